using System.CommandLine;
using AiOs.Planner.Cli.Commands;
using AiOs.Planner.Descriptions;
using Spectre.Console;

namespace AiOs.Planner.Cli;

/// <summary>The <c>aios</c> command line: parse, build the library's options, call the library, render, exit.</summary>
public static class Program
{
    public static int Main(string[] args) => Run(args, AnsiConsole.Console, Console.Out);

    /// <summary>Runs one command line with the given console (tables) and writer (JSON), for tests and for Main.</summary>
    public static int Run(string[] args, IAnsiConsole console, TextWriter stdout)
    {
        var io = new CliIo(console, stdout);
        var root = new RootCommand("aios: plan, simulate and tune training that offloads to CPU RAM and NVMe (ZeRO-Infinity).")
        {
            PlanCommand.Create(io),
            CheckNvmeCommand.Create(io),
            CleanCommand.Create(io),
            DsConfigCommand.Create(io),
            ModelsCommand.Create(io),
            ProfilesCommand.Create(io),
            TuneCommand.Create(io),
            WhatIfCommand.Create(io),
            ReportCommand.Create(io),
            CalibrateCommand.Create(io),
            BenchDriveCommand.Create(io),
            TrainCommand.Create(io),
            CalibrateGpuCommand.Create(io),
            CalibrateCpuCommand.Create(io),
            LearnCommand.Create(io),
            ExportHfCommand.Create(io),
            LogitsCommand.Create(io),
            DoctorCommand.Create(io),
        };
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors) console.MarkupLineInterpolated($"[red]error:[/] {error.Message}");
            console.MarkupLine("Run [bold]aios --help[/] or [bold]aios <command> --help[/] for the flags.");
            return ExitCodes.Usage;
        }
        try
        {
            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (DescriptionException e)
        {
            console.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
            return ExitCodes.Usage;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A file the command had to write or read failed: say which, without a stack trace.
            Console.Error.WriteLine($"error: {e.Message}");
            return ExitCodes.Failure;
        }
    }
}

/// <summary>Where a command writes: tables and messages to the console, machine-readable output to stdout.</summary>
public sealed record CliIo(IAnsiConsole Console, TextWriter Stdout);

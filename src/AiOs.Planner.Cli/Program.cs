using System.CommandLine;
using AiOs.Planner.Cli.Commands;
using AiOs.Planner.Descriptions;
using Spectre.Console;

namespace AiOs.Planner.Cli;

/// <summary>The <c>aios</c> command line: parse, build the library's options, call the library, render, exit.</summary>
public static class Program
{
    public static int Main(string[] args) => Run(args, AnsiConsole.Console, Console.Out, StderrConsole());

    /// <summary>Runs one command line with the given console (tables) and writer (JSON); errors and warnings go to a console on stderr.</summary>
    public static int Run(string[] args, IAnsiConsole console, TextWriter stdout) => Run(args, console, stdout, StderrConsole());

    /// <summary>
    /// Runs one command line: tables and messages to <paramref name="console"/>, JSON to <paramref name="stdout"/>, errors and
    /// warnings to <paramref name="errors"/> (stderr), so that <c>aios … --json | jq</c> sees one document or nothing.
    /// </summary>
    public static int Run(string[] args, IAnsiConsole console, TextWriter stdout, IAnsiConsole errors)
    {
        var io = new CliIo(console, stdout, errors);
        var root = new RootCommand("aios: plan, simulate and tune training that offloads to CPU RAM and NVMe (ZeRO-Infinity).")
        {
            PlanCommand.Create(io),
            CheckNvmeCommand.Create(io),
            CleanCommand.Create(io),
            DsConfigCommand.Create(io),
            LaunchCommand.Create(io),
            ModelsCommand.Create(io),
            ProfilesCommand.Create(io),
            TuneCommand.Create(io),
            WhatIfCommand.Create(io),
            ReportCommand.Create(io),
            CalibrateCommand.Create(io),
            BenchDriveCommand.Create(io),
            BenchCollectivesCommand.Create(io),
            BenchAdamCommand.Create(io),
            BenchDispatchCommand.Create(io),
            TrainCommand.Create(io),
            CalibrateGpuCommand.Create(io),
            CalibrateCpuCommand.Create(io),
            LearnCommand.Create(io),
            FitEagerCommand.Create(io),
            ExportHfCommand.Create(io),
            ConvertCheckpointCommand.Create(io),
            LogitsCommand.Create(io),
            DoctorCommand.Create(io),
            ServeCommand.Create(io),
        };
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors) errors.MarkupLineInterpolated($"[red]error:[/] {error.Message}");
            errors.MarkupLine("Run [bold]aios --help[/] or [bold]aios <command> --help[/] for the flags.");
            return ExitCodes.Usage;
        }
        try
        {
            // Help and version text is the command's output (stdout); System.CommandLine's own messages are errors.
            // After SIGINT/SIGTERM a command that takes the cancellation token (calibrate, bench-drive) cleans up before it
            // returns: its test file is deleted once its I/O has drained. System.CommandLine's default ends the process 2 s
            // after the signal, which a loaded machine's direct I/O can outlast (CI once kept calibrate's test file so).
            return parse.Invoke(new InvocationConfiguration
            {
                EnableDefaultExceptionHandler = false, Output = stdout, Error = new ConsoleTextWriter(errors), ProcessTerminationTimeout = TimeSpan.FromSeconds(30),
            });
        }
        catch (DescriptionException e)
        {
            errors.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
            return ExitCodes.Usage;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A file the command had to write or read failed: say which, without a stack trace.
            errors.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
            return ExitCodes.Failure;
        }
    }

    /// <summary>A Spectre console on the process's stderr: colour only when stderr is a terminal.</summary>
    private static IAnsiConsole StderrConsole()
    {
        bool redirected = Console.IsErrorRedirected;
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(Console.Error),
            Ansi = redirected ? AnsiSupport.No : AnsiSupport.Detect,
            ColorSystem = redirected ? ColorSystemSupport.NoColors : ColorSystemSupport.Detect,
        });
        // Into a log or a pipe, one message stays one line (Spectre would wrap it at 80 columns), so grep finds it whole.
        if (redirected) console.Profile.Width = 4096;
        return console;
    }

    /// <summary>Forwards System.CommandLine's own messages to a Spectre console as plain text (never parsed as markup).</summary>
    private sealed class ConsoleTextWriter(IAnsiConsole console) : TextWriter
    {
        public override System.Text.Encoding Encoding => System.Text.Encoding.UTF8;

        public override void Write(char value) => console.Write(new Text(value.ToString()));

        public override void Write(string? value)
        {
            if (!string.IsNullOrEmpty(value)) console.Write(new Text(value));
        }
    }
}

/// <summary>
/// Where a command writes: tables and messages to <paramref name="Console"/> (stdout), machine-readable output to
/// <paramref name="Stdout"/>, errors and warnings to <paramref name="Errors"/> (stderr). With --json a command writes
/// nothing to <paramref name="Console"/>, so stdout holds one JSON document or nothing.
/// </summary>
public sealed record CliIo(IAnsiConsole Console, TextWriter Stdout, IAnsiConsole Errors);

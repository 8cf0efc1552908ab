using Spectre.Console.Testing;

namespace AiOs.Planner.Cli.Tests;

/// <summary>Runs the CLI in-process with test consoles, capturing tables, JSON and stderr apart.</summary>
internal static class CliRunner
{
    /// <summary>What one run wrote.</summary>
    /// <param name="ExitCode">The process exit code.</param>
    /// <param name="Console">What a terminal shows: the tables and messages (stdout), then the errors and warnings (stderr).</param>
    /// <param name="Stdout">The machine-readable output (JSON, help text).</param>
    public sealed record Result(int ExitCode, string Console, string Stdout)
    {
        /// <summary>The errors and warnings alone (the process's stderr).</summary>
        public string Stderr { get; init; } = "";

        /// <summary>The tables and messages alone (the console on stdout).</summary>
        public string Tables { get; init; } = "";

        /// <summary>Everything the process writes to stdout: the tables and messages, then the JSON writer.</summary>
        public string AllStdout => Tables + Stdout;
    }

    public static Result Run(params string[] args)
    {
        var console = new TestConsole().Width(200);
        var errors = new TestConsole().Width(200);
        var stdout = new StringWriter();
        int code = Program.Run(args, console, stdout, errors);
        return new Result(code, console.Output + errors.Output, stdout.ToString()) { Stderr = errors.Output, Tables = console.Output };
    }
}

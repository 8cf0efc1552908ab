using Spectre.Console.Testing;

namespace AiOs.Planner.Cli.Tests;

/// <summary>Runs the CLI in-process with a test console, capturing tables and stdout apart.</summary>
internal static class CliRunner
{
    public sealed record Result(int ExitCode, string Console, string Stdout);

    public static Result Run(params string[] args)
    {
        var console = new TestConsole().Width(200);
        var stdout = new StringWriter();
        int code = Program.Run(args, console, stdout);
        return new Result(code, console.Output, stdout.ToString());
    }
}

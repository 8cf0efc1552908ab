using System.CommandLine;
using AiOs.Planner.Cli;
using AiOs.Planner.Cli.Commands;
using Spectre.Console.Testing;

namespace AiOs.Planner.Server.Tests;

/// <summary><c>aios serve</c> refuses what it cannot serve before it binds, naming the flag.</summary>
public sealed class ServeCommandTests
{
    private static (int Exit, string Errors) Run(params string[] args)
    {
        var errors = new TestConsole().Width(4096);
        var io = new CliIo(new TestConsole(), new StringWriter(), errors);
        int exit = new RootCommand { ServeCommand.Create(io) }.Parse(["serve", .. args]).Invoke();
        return (exit, errors.Output);
    }

    [Fact]
    public void A_port_out_of_range_is_refused()
    {
        var (exit, errors) = Run("--port", "70000");

        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Contains("--port 70000", errors);
    }

    [Fact]
    public void A_runs_folder_that_does_not_exist_is_refused()
    {
        string missing = Path.Combine(Path.GetTempPath(), "aios-no-such-runs-" + Guid.NewGuid().ToString("N"));
        var (exit, errors) = Run("--runs", missing);

        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Contains(missing, errors);
    }

    [Fact]
    public void Only_loopback_hosts_count_as_this_machine()
    {
        Assert.True(new ServeOptions().IsLoopback);
        Assert.True(new ServeOptions { Host = "::1" }.IsLoopback);
        Assert.False(new ServeOptions { Host = "0.0.0.0" }.IsLoopback);
        Assert.False(new ServeOptions { Host = "192.168.1.5" }.IsLoopback);
    }
}

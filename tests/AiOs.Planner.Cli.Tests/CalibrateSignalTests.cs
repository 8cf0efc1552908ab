using System.Diagnostics;

namespace AiOs.Planner.Cli.Tests;

/// <summary>Runs <c>aios calibrate</c> as its own process and signals it mid-run, as a closed terminal or a kill would.</summary>
public sealed class CalibrateSignalTests : IDisposable
{
    private readonly TempDir _dir = new("aios-calsig-");

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("HUP")]
    [InlineData("TERM")]
    [InlineData("INT")]
    public void Given_calibrate_running_When_it_gets_a_signal_Then_its_test_file_is_gone_and_no_profile_is_written(string signal)
    {
        string aios = Path.Combine(AppContext.BaseDirectory, "aios.dll");
        string profile = _dir.Combine("out.json");
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { aios, "calibrate", "--nvme-path", _dir.Path, "--quick", "--test-size", "256M", "--out", profile }) start.ArgumentList.Add(a);
        using var run = Process.Start(start)!;
        run.OutputDataReceived += (_, _) => { };
        run.ErrorDataReceived += (_, _) => { };
        run.BeginOutputReadLine();
        run.BeginErrorReadLine();

        // Wait (bounded, not timed) until the test file exists, then signal.
        for (int i = 0; i < 600 && !run.HasExited && !Directory.EnumerateFiles(_dir.Path, ".aios-calibrate-*").Any(); i++) Thread.Sleep(100);
        Assert.False(run.HasExited, "calibrate ended before its test file appeared");
        using (var kill = Process.Start("kill", ["-" + signal, run.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!) kill.WaitForExit();
        Assert.True(run.WaitForExit(60_000), "calibrate did not end after the signal");

        Assert.Empty(Directory.EnumerateFileSystemEntries(_dir.Path));
        Assert.NotEqual(0, run.ExitCode);
    }
}

using System.Diagnostics;
using System.Text.Json;

namespace AiOs.Planner.Cli.Tests;

/// <summary>
/// Signals sent to a real <c>aios train</c> process (the built CLI through <c>dotnet aios.dll</c>, as SLURM, Kubernetes or a
/// dropped SSH session would send them): each stops the run the Ctrl-C way, with summary, checkpoint and cleanup.
/// </summary>
public sealed class TrainCommandSignalTests : IDisposable
{
    /// <summary>How long a child may take to start and to stop: a generous bound for a slow shared machine, not a measurement.</summary>
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(3);
    private readonly TempDir _root = new("aios-train-signal-");

    public void Dispose() => _root.Dispose();

    [Theory]
    [InlineData("TERM", ExitCodes.Terminated, "SIGTERM", true)]
    [InlineData("TERM", ExitCodes.Terminated, "SIGTERM", false)]
    [InlineData("HUP", ExitCodes.HungUp, "SIGHUP", true)]
    [InlineData("INT", ExitCodes.Interrupted, "SIGINT", false)]
    public async Task Given_ATrainingProcessWithSwapFiles_When_SignalledDuringTraining_Then_ItExitsWithTheSignalsCodeAfterWritingTheSummaryCheckpointAndCleaningUp(
        string signal, int expectedCode, string name, bool saveEvery)
    {
        string runs = _root.Combine("runs"), nvme = _root.Combine("nvme");
        var args = new List<string>
        {
            Path.Combine(AppContext.BaseDirectory, "aios.dll"), "train", "--model", "tiny-gpt", "--steps", "100000", "--seq-len", "64", "--micro-batch", "1",
            "--offload-params", "nvme", "--offload-optimizer", "nvme", "--nvme-offload-path", nvme, "--buffered-swap", "--runs-dir", runs, "--run-id", "sig",
        };
        if (saveEvery) args.AddRange(["--save-every", "1000"]);
        using Process child = Start(args, out Task<bool> secondStep);

        Assert.True(await secondStep.WaitAsync(Patience), "the child never reached step 2");
        Assert.True(Directory.Exists(Path.Combine(nvme, "aios-sig")));
        Signal(child.Id, signal);
        using var wait = new CancellationTokenSource(Patience);
        bool exited = true;
        try
        {
            await child.WaitForExitAsync(wait.Token);
        }
        catch (OperationCanceledException)
        {
            exited = false;
            child.Kill(entireProcessTree: true);
        }

        Assert.True(exited, "the child did not stop");
        Assert.Equal(expectedCode, child.ExitCode);
        using JsonDocument summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(runs, "sig", "summary.json")));
        Assert.False(summary.RootElement.GetProperty("completed").GetBoolean());
        Assert.Equal(name, summary.RootElement.GetProperty("stopped_by").GetString());
        int done = summary.RootElement.GetProperty("steps_completed").GetInt32();
        Assert.True(done >= 2);
        // With --save-every the stop writes a checkpoint of the last finished step, though 1000 was never reached.
        Assert.Equal(saveEvery, Directory.Exists(Path.Combine(runs, "sig", "checkpoints", $"step-{done}")));
        Assert.False(Directory.Exists(Path.Combine(nvme, "aios-sig")));
    }

    /// <summary>Starts <c>dotnet</c> with <paramref name="args"/>; <paramref name="secondStep"/> completes when the child prints step 2.</summary>
    private static Process Start(IEnumerable<string> args, out Task<bool> secondStep)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in args) info.ArgumentList.Add(a);
        var reached = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var child = new Process { StartInfo = info };
        child.OutputDataReceived += (_, e) =>
        {
            if (e.Data?.StartsWith("step 2/", StringComparison.Ordinal) == true) reached.TrySetResult(true);
        };
        child.ErrorDataReceived += (_, _) => { };
        child.Exited += (_, _) => reached.TrySetResult(false);
        child.EnableRaisingEvents = true;
        child.Start();
        child.BeginOutputReadLine();
        child.BeginErrorReadLine();
        secondStep = reached.Task;
        return child;
    }

    /// <summary>Sends SIG<paramref name="signal"/> with kill(1), as an operator or an orchestrator would.</summary>
    private static void Signal(int pid, string signal)
    {
        using var kill = Process.Start("kill", ["-" + signal, pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }
}

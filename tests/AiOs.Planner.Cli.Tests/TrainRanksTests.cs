using System.Diagnostics;
using System.Text.Json;

namespace AiOs.Planner.Cli.Tests;

/// <summary>
/// <c>aios train --gpus N</c> as a user runs it (the built CLI through <c>dotnet aios.dll</c>): on a CPU it starts N processes
/// that train one data-parallel run, which must equal one process with the same global batch; a rank that fails ends the
/// group with that rank's error.
/// </summary>
public sealed class TrainRanksTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(4);
    private readonly TempDir _root = new("aios-train-ranks-");

    public void Dispose() => _root.Dispose();

    /// <summary>
    /// The CLI to start: the CLI project's own build when present. The copy beside the tests is instrumented when CI collects
    /// coverage, and several instrumented processes ending together race for the coverage file (the tracker then crashes
    /// them with exit code 134), which says nothing about the ranks.
    /// </summary>
    private static string Cli()
    {
        var here = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        // tests/AiOs.Planner.Cli.Tests/bin/<configuration>/<framework>/ → src/AiOs.Planner.Cli/bin/<configuration>/<framework>/aios.dll
        string? root = here.Parent?.Parent?.Parent?.Parent?.Parent?.FullName;
        string own = root is null ? "" : Path.Combine(root, "src", "AiOs.Planner.Cli", "bin", here.Parent!.Name, here.Name, "aios.dll");
        return File.Exists(own) ? own : Path.Combine(AppContext.BaseDirectory, "aios.dll");
    }

    private static async Task<(int Code, string Output)> Aios(params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Cli());
        foreach (string a in args) info.ArgumentList.Add(a);
        using var child = Process.Start(info)!;
        Task<string> output = child.StandardOutput.ReadToEndAsync(), errors = child.StandardError.ReadToEndAsync();
        using var wait = new CancellationTokenSource(Patience);
        try
        {
            await child.WaitForExitAsync(wait.Token);
        }
        catch (OperationCanceledException)
        {
            child.Kill(entireProcessTree: true);
            throw;
        }
        return (child.ExitCode, await output + await errors);
    }

    private static double[] Losses(string runFolder) => File.ReadAllLines(Path.Combine(runFolder, "metrics.jsonl"))
        .Select(line => JsonDocument.Parse(line).RootElement.GetProperty("loss").GetDouble()).ToArray();

    private string[] Train(string runId, params string[] more) =>
    [
        "train", "--model", "tiny-gpt", "--steps", "3", "--seq-len", "32", "--micro-batch", "2", "--offload-params", "cpu",
        "--offload-optimizer", "cpu", "--precision", "fp32", "--runs-dir", _root.Combine("runs"), "--run-id", runId, .. more,
    ];

    [Fact]
    public async Task Given_TwoRanksOnTheCpu_When_Trained_Then_TheRunEqualsOneProcessWithTheSameGlobalBatchAndItsCheckpointHoldsBothShards()
    {
        var (oneCode, oneOutput) = await Aios(Train("one", "--grad-accumulation", "4"));
        Assert.True(oneCode == 0, oneOutput);
        var (code, output) = await Aios(Train("two", "--grad-accumulation", "2", "--gpus", "2", "--save-every", "3"));
        Assert.True(code == 0, output);

        string two = _root.Combine("runs", "two");
        double[] expected = Losses(_root.Combine("runs", "one")), losses = Losses(two);
        Assert.Equal(3, losses.Length);
        for (int s = 0; s < losses.Length; s++) Assert.Equal(expected[s], losses[s], 1e-5);
        // Rank 1 trained the same run in its own folder inside rank 0's.
        Assert.Equal(losses, Losses(Path.Combine(two, "ranks", "two-rank1")));
        using JsonDocument manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(two, "checkpoints", "step-3", "checkpoint.json")));
        Assert.Equal(2, manifest.RootElement.GetProperty("world_size").GetInt32());
        Assert.Contains("starting 2 ranks", output);
    }

    [Fact]
    public async Task Given_SettingsTheRanksRefuse_When_Launched_Then_NoRankStartsAndTheErrorNamesTheSetting()
    {
        var (code, output) = await Aios(Train("bad", "--gpus", "2", "--schedule", "overlapped", "--clip-grad-norm", "1"));
        Assert.Equal(ExitCodes.Usage, code);
        Assert.DoesNotContain("starting 2 ranks", output);
        Assert.Contains("--schedule overlapped with --clip-grad-norm is not supported with --gpus 2", output);
        Assert.False(Directory.Exists(_root.Combine("runs", "bad")));
    }

    [Fact]
    public async Task Given_ARankThatFails_When_TheGroupRuns_Then_TheOthersAreEndedAndTheErrorNamesTheFailingRankAndItsCause()
    {
        // The settings pass the launcher's check, but rank 1's swap folder is taken by a file of its name: rank 1's error ends the group.
        string nvme = Directory.CreateDirectory(_root.Combine("nvme")).FullName;
        await File.WriteAllTextAsync(Path.Combine(nvme, "aios-clash-rank1"), "not a folder");
        var (code, output) = await Aios("train", "--model", "tiny-gpt", "--steps", "3", "--seq-len", "32", "--micro-batch", "2", "--offload-params", "nvme",
            "--offload-optimizer", "cpu", "--nvme-offload-path", nvme, "--buffered-swap", "--runs-dir", _root.Combine("runs"), "--run-id", "clash", "--gpus", "2");
        Assert.NotEqual(0, code);
        // Rank 1 fails at its swap folder; rank 0 only sees it leave, so the launcher names rank 1 whichever exited first.
        Assert.Contains("rank 1 failed with exit code 2", output);
        Assert.Contains("aios-clash-rank1", output);
    }

    [Fact]
    public async Task Given_TwoCpuRanks_When_TheCollectivesAreBenchmarked_Then_EachCollectiveAndSizeHasAPositiveBusBandwidthAgainstTheProfilesLink()
    {
        var (code, output) = await Aios("bench-collectives", "--gpus", "2", "--device", "cpu", "--max-size", "4M", "--repeats", "1",
            "--hardware", "consumer-2x11gb-64gb-pcie4", "--json");
        Assert.True(code == 0, output);

        using JsonDocument doc = JsonDocument.Parse(output[output.IndexOf('{')..(output.LastIndexOf('}') + 1)]);
        var rows = doc.RootElement.GetProperty("rows").EnumerateArray().ToList();
        Assert.Equal(6, rows.Count);
        Assert.Equal(["all_gather", "reduce_scatter", "all_reduce"], rows.Select(r => r.GetProperty("collective").GetString()).Distinct());
        Assert.All(rows, r => Assert.True(r.GetProperty("bus_gbps").GetDouble() > 0));
        Assert.All(rows, r => Assert.True(r.GetProperty("of_profile_link").GetDouble() > 0));
        Assert.Equal(2, doc.RootElement.GetProperty("ranks").GetInt32());
    }

    [Fact]
    public async Task Given_TwoRanksTraining_When_TheLauncherAloneGetsSigterm_Then_EveryRankStopsAfterTheSameStepWithItsSummaryAndCheckpoint()
    {
        string runs = _root.Combine("runs");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Cli());
        foreach (string a in Train("sig", "--gpus", "2", "--save-every", "100000")) info.ArgumentList.Add(a);
        // --steps 3 from Train() is replaced by a run too long to finish.
        int steps = info.ArgumentList.IndexOf("--steps");
        info.ArgumentList[steps + 1] = "100000";
        using var launcher = new Process { StartInfo = info };
        var second = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        launcher.OutputDataReceived += (_, e) => { if (e.Data?.StartsWith("step 2/", StringComparison.Ordinal) == true) second.TrySetResult(true); };
        launcher.ErrorDataReceived += (_, _) => { };
        launcher.Start();
        launcher.BeginOutputReadLine();
        launcher.BeginErrorReadLine();
        Assert.True(await second.Task.WaitAsync(Patience), "the ranks never reached step 2");

        using (var kill = Process.Start("kill", ["-TERM", launcher.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])) await kill.WaitForExitAsync();
        using var wait = new CancellationTokenSource(Patience);
        await launcher.WaitForExitAsync(wait.Token);

        Assert.Equal(ExitCodes.Terminated, launcher.ExitCode);
        string[] folders = [Path.Combine(runs, "sig"), Path.Combine(runs, "sig", "ranks", "sig-rank1")];
        int[] done = [.. folders.Select(f =>
        {
            using JsonDocument summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(f, "summary.json")));
            Assert.Equal("SIGTERM", summary.RootElement.GetProperty("stopped_by").GetString());
            return summary.RootElement.GetProperty("steps_completed").GetInt32();
        })];
        Assert.Equal(done[0], done[1]);
        using JsonDocument manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(runs, "sig", "checkpoints", $"step-{done[0]}", "checkpoint.json")));
        Assert.Equal(2, manifest.RootElement.GetProperty("world_size").GetInt32());
    }
}

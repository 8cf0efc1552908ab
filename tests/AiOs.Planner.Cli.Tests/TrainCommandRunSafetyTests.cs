using System.Text.Json;
using AiOs.Planner.Engine.Runs;

namespace AiOs.Planner.Cli.Tests;

/// <summary>How <c>aios train</c> treats run ids, run folders, divergence and plans that do not fit (issue 11, items 1, 2, 4, 5).</summary>
public sealed class TrainCommandRunSafetyTests : IDisposable
{
    private readonly TempDir _root = new("aios-train-safety-");

    public void Dispose() => _root.Dispose();

    private string Runs => _root.Combine("runs");

    private CliRunner.Result Train(params string[] extra) =>
        CliRunner.Run(["train", "--model", "tiny-gpt", "--seq-len", "64", "--micro-batch", "1", "--runs-dir", Runs, .. extra]);

    [Theory]
    [InlineData("x/..")]
    [InlineData("..")]
    [InlineData(".")]
    [InlineData("")]
    [InlineData("a b")]
    [InlineData("../victim")]
    [InlineData("x/../../victim")]
    [InlineData("/tmp/absolute")]
    [InlineData("tab\there")]
    public void Given_ARunIdThatIsNotAPlainName_When_Trained_Then_ItIsAUsageErrorAndNothingIsCreatedOrDeleted(string id)
    {
        string offload = _root.Combine("offload"), victim = _root.Combine("victim");
        Directory.CreateDirectory(offload);
        File.WriteAllText(Path.Combine(offload, "keep.txt"), "mine");
        Directory.CreateDirectory(victim);
        File.WriteAllText(Path.Combine(victim, "keep.txt"), "mine");

        var result = Train("--steps", "1", "--run-id", id, "--offload-params", "nvme", "--nvme-offload-path", offload);

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("--run-id", result.Console);
        Assert.False(Directory.Exists(Runs));
        Assert.Equal(["keep.txt"], Directory.GetFileSystemEntries(offload).Select(Path.GetFileName));
        Assert.True(File.Exists(Path.Combine(victim, "keep.txt")));
    }

    [Fact]
    public void Given_ARunIdLongerThanTheLimit_When_Trained_Then_TheErrorGivesTheLimit()
    {
        var result = Train("--steps", "1", "--run-id", new string('a', RunId.MaxLength + 1));

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains($"more than {RunId.MaxLength}", result.Console);
        Assert.False(Directory.Exists(Runs));
    }

    [Fact]
    public void Given_AnotherProcessHoldsTheRunFolder_When_TrainedWithTheSameId_Then_ItIsRefusedAndTheFolderIsUntouched()
    {
        // flock conflicts between two opens of the lock file even in one process, as between two processes.
        using RunFolder held = RunFolder.Open(Runs, "same", null);
        string metrics = Path.Combine(held.Path, "metrics.jsonl");
        File.WriteAllText(metrics, "{\"step\":1}\n");

        var result = Train("--steps", "1", "--run-id", "same");

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("in use by another aios train", result.Console);
        Assert.Equal("{\"step\":1}\n", File.ReadAllText(metrics));
        Assert.False(File.Exists(Path.Combine(held.Path, "summary.json")));
    }

    [Fact]
    public void Given_AFinishedRun_When_ItsIdIsReusedWithoutResume_Then_ItIsRefusedAndItsMetricsAreKept()
    {
        Assert.Equal(ExitCodes.Ok, Train("--steps", "2", "--run-id", "old").ExitCode);
        string metrics = Path.Combine(Runs, "old", "metrics.jsonl");
        string before = File.ReadAllText(metrics);

        var result = Train("--steps", "1", "--run-id", "old", "--seed", "7");

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("already holds a run", result.Console);
        Assert.Contains("--resume", result.Console);
        Assert.Equal(before, File.ReadAllText(metrics));
    }

    [Fact]
    public void Given_ARunWithAStepTwoCheckpointAndFourSteps_When_ResumedByIdToFive_Then_ItsMetricsHoldEachStepOnceInOrder()
    {
        Assert.Equal(ExitCodes.Ok, Train("--steps", "4", "--run-id", "long", "--save-every", "2", "--json").ExitCode);
        File.Delete(Path.Combine(Runs, "long", "checkpoints", "step-4", "checkpoint.json"));

        var resumed = Train("--steps", "5", "--resume", "long", "--json");

        Assert.Equal(ExitCodes.Ok, resumed.ExitCode);
        int[] steps = File.ReadAllLines(Path.Combine(Runs, "long", "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("step").GetInt32()).ToArray();
        Assert.Equal([1, 2, 3, 4, 5], steps);
        int[] traced = File.ReadAllLines(Path.Combine(Runs, "long", "trace.jsonl")).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("step").GetInt32()).Distinct().ToArray();
        Assert.Equal([1, 2, 3, 4, 5], traced);
        Assert.Single(Directory.GetDirectories(Runs));
    }

    [Theory]
    [InlineData("NaN")]
    [InlineData("-0.001")]
    [InlineData("Infinity")]
    public void Given_ALearningRateThatIsNotAFiniteNonNegativeNumber_When_Trained_Then_TheErrorNamesLrBeforeAnythingIsCreated(string lr)
    {
        var result = Train("--steps", "1", "--run-id", "lr", "--lr=" + lr);

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("--lr", result.Console);
        Assert.False(Directory.Exists(Runs));
    }

    [Fact]
    public void Given_ALearningRateThatDiverges_When_Trained_Then_ItStopsNamingTheStepWritesTheSummaryAndKeepsOnlyCheckpointsBeforeIt()
    {
        var result = Train("--steps", "8", "--run-id", "div", "--lr", "1e4", "--save-every", "1", "--json");

        Assert.Equal(ExitCodes.Diverged, result.ExitCode);
        using JsonDocument summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(Runs, "div", "summary.json")));
        int bad = summary.RootElement.GetProperty("non_finite_step").GetInt32();
        Assert.False(summary.RootElement.GetProperty("completed").GetBoolean());
        Assert.Contains($"Step {bad}:", summary.RootElement.GetProperty("error").GetString());
        Assert.Contains("--lr", summary.RootElement.GetProperty("error").GetString());
        int[] saved = Directory.GetDirectories(Path.Combine(Runs, "div", "checkpoints"), "step-*").Select(d => int.Parse(Path.GetFileName(d)["step-".Length..])).ToArray();
        Assert.All(saved, s => Assert.True(s < bad));
        Assert.Equal(bad - 1, summary.RootElement.GetProperty("steps_completed").GetInt32());
    }

    [Fact]
    public void Given_APlanThatNeedsMoreHostRamThanAnyMachineHas_When_Trained_Then_ItIsInfeasibleWithThePlansMessageBeforeTheRunFolderExists()
    {
        // gpt2 at micro-batch 512 × 1024 tokens: the activations alone need over half a TiB.
        var result = CliRunner.Run("train", "--model", "gpt2", "--steps", "1", "--micro-batch", "512", "--seq-len", "1024", "--runs-dir", Runs, "--run-id", "big");

        Assert.Equal(ExitCodes.Infeasible, result.ExitCode);
        Assert.Contains("Host RAM: needs", result.Console);
        Assert.Contains("activations", result.Console);
        Assert.Contains("--force", result.Console);
        Assert.False(Directory.Exists(Runs));
    }

    [Fact]
    public void Given_APlanTheCheckRefuses_When_TrainedWithForce_Then_TheRunStarts()
    {
        // Priced as DeepSpeed, the swap buffers are sized by --buffer-size (here about 190 GiB) and the check refuses; the engine
        // stages one unit per buffer, so it runs (priced as aios, the default, the check passes).
        string[] args = ["--steps", "1", "--offload-params", "nvme", "--nvme-offload-path", _root.Combine("nvme"), "--buffer-size", "20000000000", "--run-id", "forced", "--executor", "deepspeed"];

        var refused = Train(args);
        var forced = Train([.. args, "--force"]);

        Assert.Equal(ExitCodes.Infeasible, refused.ExitCode);
        Assert.Equal(ExitCodes.Ok, forced.ExitCode);
        Assert.True(File.Exists(Path.Combine(Runs, "forced", "summary.json")));
    }
}

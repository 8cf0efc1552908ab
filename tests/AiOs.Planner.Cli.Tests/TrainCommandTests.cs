using System.Text.Json;

namespace AiOs.Planner.Cli.Tests;

public sealed class TrainCommandTests : IDisposable
{
    private readonly TempDir _root = new("aios-train-");

    public void Dispose() => _root.Dispose();

    [Fact]
    public void Given_TinyGptOnNvme_When_TrainedTwoStepsWithJson_Then_ItExitsOkAndPrintsACompletedSummary()
    {
        var result = CliRunner.Run("train", "--model", "tiny-gpt", "--steps", "2", "--seq-len", "16", "--micro-batch", "1",
            "--offload-params", "nvme", "--offload-optimizer", "nvme", "--nvme-offload-path", _root.Combine("nvme"),
            "--runs-dir", _root.Combine("runs"), "--run-id", "cli", "--json");

        Assert.Equal(ExitCodes.Ok, result.ExitCode);
        using JsonDocument doc = JsonDocument.Parse(result.Stdout);
        Assert.True(doc.RootElement.GetProperty("completed").GetBoolean());
        Assert.True(doc.RootElement.GetProperty("nvme_read_bytes").GetInt64() > 0);
        Assert.DoesNotContain("step 2/2", result.Console);
        Assert.Equal(2, File.ReadAllLines(_root.Combine("runs", "cli", "metrics.jsonl")).Length);
    }

    [Fact]
    public void Given_the_hosts_time_queueing_the_passes_When_rendered_Then_both_figures_are_shown_without_a_verdict()
    {
        string line = Commands.TrainCommand.PassesOnHost(84.04, 84.58);
        Assert.Equal("84.0 ms (the passes on the device's clock: 84.6 ms)", line);
        Assert.DoesNotContain("bound", line);
    }

    [Fact]
    public void Given_a_cpu_run_When_trained_Then_its_metrics_carry_no_host_pass_time()
    {
        // On a CPU the phases are host time already; the field is the GPU's (its spans are timed on the device).
        var result = CliRunner.Run("train", "--model", "tiny-gpt", "--steps", "2", "--seq-len", "16", "--micro-batch", "1",
            "--runs-dir", _root.Combine("runs"), "--run-id", "cpu-host", "--json");
        Assert.Equal(ExitCodes.Ok, result.ExitCode);
        foreach (string line in File.ReadAllLines(_root.Combine("runs", "cpu-host", "metrics.jsonl")))
            Assert.False(JsonDocument.Parse(line).RootElement.TryGetProperty("host_pass_ms", out var v) && v.ValueKind != JsonValueKind.Null);
    }

    [Fact]
    public void Given_NoJsonFlag_When_Trained_Then_EachStepPrintsALineAndTheSummaryTableFollows()
    {
        var result = CliRunner.Run("train", "--model", "tiny-gpt", "--steps", "2", "--seq-len", "16", "--micro-batch", "1",
            "--runs-dir", _root.Combine("runs"), "--run-id", "table");

        Assert.Equal(ExitCodes.Ok, result.ExitCode);
        Assert.Contains("step 1/2", result.Console);
        Assert.Contains("step 2/2", result.Console);
        Assert.Contains("median step", result.Console);
        Assert.Equal("", result.Stdout);
    }

    [Fact]
    public void Given_ARunWithCheckpoints_When_ResumedWithMoreSteps_Then_OnlyTheRemainingStepsRun()
    {
        string runs = _root.Combine("runs");
        var first = CliRunner.Run("train", "--model", "tiny-gpt", "--steps", "2", "--seq-len", "16", "--micro-batch", "1",
            "--runs-dir", runs, "--run-id", "one", "--save-every", "2");

        var second = CliRunner.Run("train", "--model", "tiny-gpt", "--steps", "3", "--seq-len", "16", "--micro-batch", "1",
            "--runs-dir", runs, "--run-id", "two", "--resume", Path.Combine(runs, "one"));

        Assert.Equal(ExitCodes.Ok, first.ExitCode);
        Assert.Contains("last checkpoint", first.Console);
        Assert.Equal(ExitCodes.Ok, second.ExitCode);
        Assert.Contains("step 3/3", second.Console);
        Assert.DoesNotContain("step 1/3", second.Console);
    }

    [Fact]
    public void Given_AMissingDatasetFile_When_Trained_Then_ItIsAUsageErrorNamingTheFile()
    {
        var result = CliRunner.Run("train", "--model", "tiny-gpt", "--steps", "1", "--seq-len", "16", "--dataset-file", _root.Combine("nope.txt"),
            "--runs-dir", _root.Combine("runs"));

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("nope.txt", result.Console);
    }

    [Fact]
    public void Given_Gpt2TokensAndAByteLevelModel_When_Trained_Then_TheErrorNamesTheVocabulary()
    {
        var result = CliRunner.Run("train", "--model", "tiny-gpt", "--steps", "1", "--tokenizer", "gpt2", "--seq-len", "16",
            "--runs-dir", _root.Combine("runs"));

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("vocab_size", result.Console);
    }

    [Fact]
    public void Given_Fp16WithTheOverlappedSchedule_When_Trained_Then_TheErrorSaysWhichSettingToChange()
    {
        var result = CliRunner.Run("train", "--model", "tiny-gpt", "--steps", "1", "--precision", "fp16", "--seq-len", "16",
            "--schedule", "overlapped", "--runs-dir", _root.Combine("runs"));

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("--schedule deepspeed", result.Console);
    }

    [Fact]
    public void Given_InitFromAMissingFolder_When_Trained_Then_ItIsAUsageErrorNamingThePath()
    {
        string missing = _root.Combine("no-such-model");
        var result = CliRunner.Run("train", "--model", "tiny-gpt", "--steps", "1", "--seq-len", "16", "--init-from", missing,
            "--runs-dir", _root.Combine("runs"));

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("no-such-model", result.Console);
        Assert.False(Directory.Exists(_root.Combine("runs")));
    }

    [Fact]
    public void Given_InitFromWithResume_When_Trained_Then_ItIsRefusedSayingWhy()
    {
        var result = CliRunner.Run("train", "--model", "tiny-gpt", "--steps", "1", "--seq-len", "16", "--init-from", _root.Path,
            "--resume", _root.Path, "--runs-dir", _root.Combine("runs"));

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("cannot be combined", result.Console);
    }

    [Fact]
    public void Given_InitFromAnAiosCheckpoint_When_Trained_Then_ItStartsFromThoseWeightsWithAFreshOptimizer()
    {
        string runs = _root.Combine("runs");
        var first = CliRunner.Run("train", "--model", "tiny-gpt", "--steps", "2", "--seq-len", "16", "--micro-batch", "1",
            "--runs-dir", runs, "--run-id", "one", "--save-every", "2", "--json");
        string checkpoint = Path.Combine(runs, "one", "checkpoints", "step-2");

        var second = CliRunner.Run("train", "--model", "tiny-gpt", "--steps", "1", "--seq-len", "16", "--micro-batch", "1",
            "--runs-dir", runs, "--run-id", "two", "--init-from", checkpoint, "--json");

        Assert.Equal(ExitCodes.Ok, first.ExitCode);
        Assert.Equal(ExitCodes.Ok, second.ExitCode);
        using JsonDocument a = JsonDocument.Parse(first.Stdout), b = JsonDocument.Parse(second.Stdout);
        // The same batch as the first run's step 1, now on weights two steps into training: a lower loss.
        Assert.True(b.RootElement.GetProperty("first_loss").GetDouble() < a.RootElement.GetProperty("first_loss").GetDouble());
    }
}

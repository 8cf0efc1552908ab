using System.Text.Json;

namespace AiOs.Planner.Cli.Tests;

/// <summary><c>aios train</c>'s learning-rate defaults and schedule, and the profile it predicts for without --hardware (issue 12, items 4 and 5).</summary>
public sealed class TrainLearningRateTests : IDisposable
{
    private readonly TempDir _root = new("aios-train-lr-");

    public void Dispose() => _root.Dispose();

    private string Runs => _root.Combine("runs");

    private CliRunner.Result Train(params string[] extra) =>
        CliRunner.Run(["train", "--model", "tiny-gpt", "--seq-len", "32", "--micro-batch", "1", "--runs-dir", Runs, .. extra]);

    private double?[] Rates(string id) => File.ReadAllLines(Path.Combine(Runs, id, "metrics.jsonl"))
        .Select(l => JsonDocument.Parse(l).RootElement.GetProperty("learning_rate"))
        .Select(e => e.ValueKind == JsonValueKind.Null ? (double?)null : e.GetDouble()).ToArray();

    [Fact]
    public void Given_NoLearningRateFlags_When_Trained_Then_EveryStepRunsAt1e4()
    {
        var result = Train("--steps", "3", "--run-id", "plain");

        Assert.Equal(ExitCodes.Ok, result.ExitCode);
        Assert.Equal([1e-4, 1e-4, 1e-4], Rates("plain"));
    }

    [Fact]
    public void Given_ALinearScheduleWithWarmUp_When_Trained_Then_TheRatesRiseThenFallToTheMinimumAtTheLastStep()
    {
        var result = Train("--steps", "6", "--run-id", "linear", "--lr", "1e-3", "--lr-schedule", "linear", "--warmup-steps", "3", "--min-lr", "1e-5");

        Assert.Equal(ExitCodes.Ok, result.ExitCode);
        double?[] rates = Rates("linear");
        Assert.Equal(1e-5 + (1e-3 - 1e-5) / 3, rates[0]!.Value, 12);
        Assert.Equal(1e-3, rates[2]!.Value, 12);
        Assert.Equal(1e-5, rates[5]!.Value, 12);
    }

    [Theory]
    [InlineData("--warmup-steps", "50", "--warmup-steps")]
    [InlineData("--min-lr", "1", "--min-lr")]
    [InlineData("--lr", "-1", "--lr")]
    public void Given_AScheduleThatCannotRun_When_Trained_Then_ItIsAUsageErrorNamingTheFlagAndNothingIsCreated(string flag, string value, string named)
    {
        var result = Train("--steps", "10", "--lr-schedule", "cosine", flag, value);

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains(named, result.Console);
        Assert.False(Directory.Exists(Runs));
    }

    [Fact]
    public void Given_NoHardwareOnACpu_When_Trained_Then_ItSaysTheProfileIsThisMachineWithUncalibratedRates()
    {
        var result = Train("--steps", "1", "--run-id", "machine");

        Assert.Equal(ExitCodes.Ok, result.ExitCode);
        string console = string.Join(" ", result.Console.Split((char[])['\n', '\r'], StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()));
        Assert.Contains($"this machine ({Environment.ProcessorCount} cores", console);
        Assert.Contains("uncalibrated rates from ci-2core-24gb", console);
        Assert.Contains("aios calibrate-cpu", console);
    }

    [Fact]
    public void Given_AGpuProfileOnACpuDevice_When_AutoTuned_Then_TheTunerPlansForAMachineWithoutAGpu()
    {
        var result = Train("--steps", "1", "--run-id", "tuned", "--device", "cpu", "--hardware", "h100-node", "--auto-tune", "--tune-max-micro-batch", "1");

        Assert.Equal(ExitCodes.Ok, result.ExitCode);
        Assert.Contains("Auto-tuned for h100-node", result.Console);
        // The tuner's memory line names the tiers of the machine it planned for: host RAM, and no GPU.
        Assert.DoesNotContain("Memory: GPU", result.Console);
        Assert.Contains("Memory: host RAM", result.Console);
    }

    [Fact]
    public void Given_ACosineSchedule_When_DsConfigIsWritten_Then_ItCarriesWarmupCosineLRWithTheRunsSteps()
    {
        var result = CliRunner.Run("ds-config", "--model", "tiny-gpt", "--hardware", "ci-2core-24gb", "--seq-len", "64",
            "--lr", "3e-4", "--lr-schedule", "cosine", "--warmup-steps", "20", "--min-lr", "3e-5", "--steps", "200");

        Assert.Equal(ExitCodes.Ok, result.ExitCode);
        var config = JsonDocument.Parse(result.Stdout).RootElement;
        Assert.Equal(3e-4, config.GetProperty("optimizer").GetProperty("params").GetProperty("lr").GetDouble());
        var scheduler = config.GetProperty("scheduler");
        Assert.Equal("WarmupCosineLR", scheduler.GetProperty("type").GetString());
        Assert.Equal(20, scheduler.GetProperty("params").GetProperty("warmup_num_steps").GetInt32());
        Assert.Equal(0.1, scheduler.GetProperty("params").GetProperty("cos_min_ratio").GetDouble(), 12);
        Assert.Equal("linear", scheduler.GetProperty("params").GetProperty("warmup_type").GetString());
    }
}

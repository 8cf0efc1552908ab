using AiOs.Planner.Records;
using System.Text.Json;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Engine.Tests;

/// <summary>EngineRun with a learning rate that makes the loss non-finite, and with values that could only do so.</summary>
public sealed class EngineRunDivergenceTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("aios-diverge-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private EngineRunRequest Request(TrainingSettings settings, double lr) => new()
    {
        Model = ModelCatalog.Default.Load("tiny-gpt"),
        Settings = settings,
        Steps = 10,
        SaveEvery = 1,
        RunsRoot = Path.Combine(_root, "runs"),
        Options = LayerwiseTrainerTests.Options() with { RunId = "div", Adam = new() { LearningRate = lr } },
    };

    [Theory]
    [InlineData(StepSchedule.DeepSpeed)]
    [InlineData(StepSchedule.Overlapped)]
    public void Given_OffloadedTrainingAtLr1e4_When_Run_Then_ItStopsAtTheNonFiniteStepWithASummaryAndNoCheckpointOfItOrAfter(StepSchedule schedule)
    {
        TrainingSettings settings = LayerwiseTrainerTests.Small() with { ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, Schedule = schedule };

        RunSummary summary = EngineRun.Execute(Request(settings, 1e4));

        AssertStoppedAtItsNonFiniteStep(summary);
    }

    /// <summary>
    /// The run stopped at its first non-finite step: that step is in the summary (returned, and in summary.json) and named with
    /// the fix, is the last line of metrics.jsonl, and no checkpoint of it or later exists.
    /// </summary>
    private void AssertStoppedAtItsNonFiniteStep(RunSummary summary)
    {
        int bad = Assert.IsType<int>(summary.NonFiniteStep);
        Assert.False(summary.Completed);
        Assert.Equal(bad - 1, summary.StepsCompleted);
        Assert.Contains($"Step {bad}:", summary.Error);
        Assert.Contains("--lr", summary.Error);
        string dir = Path.Combine(_root, "runs", "div");
        Assert.All(Directory.GetDirectories(Path.Combine(dir, "checkpoints")), d => Assert.True(int.Parse(Path.GetFileName(d)["step-".Length..]) < bad));
        using JsonDocument written = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "summary.json")));
        Assert.Equal(bad, written.RootElement.GetProperty("non_finite_step").GetInt32());
        using JsonDocument line = JsonDocument.Parse(File.ReadAllLines(Path.Combine(dir, "metrics.jsonl"))[^1]);
        Assert.Equal(bad, line.RootElement.GetProperty("step").GetInt32());
        Assert.NotNull(line.RootElement.GetProperty("non_finite").GetString());
    }

    /// <summary>The resident trainer sums its micro-batches' losses on the device and reads them with the update: a non-finite one must still stop the update.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Given_ResidentTrainingAtLr1e4_When_Run_Then_ItStopsAtTheNonFiniteStepWithoutUpdatingAndSaysWhy(int accumulation)
    {
        TrainingSettings settings = LayerwiseTrainerTests.Small() with { GradAccumulation = accumulation };

        RunSummary summary = EngineRun.Execute(Request(settings, 1e4));

        AssertStoppedAtItsNonFiniteStep(summary);
        // The loss itself (summed on the device, read with the norms) names the step, as when it was read at each forward.
        Assert.Contains("the loss (", summary.Error);
        Assert.StartsWith("device-resident", summary.Executor);
    }

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(-1e-3)]
    public void Given_ALearningRateThatIsNotAFiniteNonNegativeNumber_When_Run_Then_ItIsRefusedNamingLrBeforeTheRunFolderExists(double lr)
    {
        var e = Assert.Throws<ArgumentException>(() => EngineRun.Execute(Request(LayerwiseTrainerTests.Small(), lr)));

        Assert.Contains("--lr", e.Message);
        Assert.False(Directory.Exists(Path.Combine(_root, "runs")));
    }

    [Fact]
    public void Given_NonFiniteValues_When_StepMetricsAreSerialised_Then_TheyAreNullNotAnError()
    {
        var m = new StepMetrics
        {
            Step = 3, Loss = double.NaN, Tokens = 1, WallMs = 1, ForwardMs = 1, BackwardMs = 1, OptimizerMs = 1, IoStallMs = 0, TokensPerSecond = 1,
            CpuReadBytes = 0, CpuWrittenBytes = 0, NvmeReadBytes = 0, NvmeWrittenBytes = 0, NvmeReadGBps = 0, NvmeWriteGBps = 0,
            UploadBytes = 0, DownloadBytes = 0, UploadGBps = 0, ResidentBytes = 0, PeakResidentBytes = 0,
        };

        string json = JsonSerializer.Serialize(m, Descriptions.DescriptionJson.Options);

        Assert.Contains("\"loss\": null", json);
        Assert.True(double.IsNaN(JsonSerializer.Deserialize<StepMetrics>(json, Descriptions.DescriptionJson.Options)!.Loss));
    }
}

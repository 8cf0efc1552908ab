using System.Text.Json;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Engine.Tests;

public sealed class EngineRunTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("aios-runs-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private EngineRunRequest Request(TrainingSettings settings, int steps = 3) => new()
    {
        Model = ModelCatalog.Default.Load("tiny-gpt"),
        Settings = settings,
        Steps = steps,
        RunsRoot = Path.Combine(_root, "runs"),
        Options = LayerwiseTrainerTests.Options() with { RunId = "test-run" },
    };

    [Fact]
    public void Given_ParametersAndOptimizerOnNvme_When_Run_Then_TheRunFolderHoldsSettingsOneMetricsLinePerStepTraceAndSummary()
    {
        string nvme = Path.Combine(_root, "nvme");
        TrainingSettings settings = LayerwiseTrainerTests.Small() with
        {
            ParamOffload = OffloadTier.Nvme,
            OptimizerOffload = OffloadTier.Nvme,
            NvmePath = nvme,
            GradAccumulation = 1,
        };
        var seen = new List<StepMetrics>();

        RunSummary summary = EngineRun.Execute(Request(settings), new SyncProgress(seen.Add));

        string dir = Path.Combine(_root, "runs", "test-run");
        Assert.True(File.Exists(Path.Combine(dir, "settings.json")));
        string[] lines = File.ReadAllLines(Path.Combine(dir, "metrics.jsonl"));
        Assert.Equal(3, lines.Length);
        Assert.Equal(3, seen.Count);
        using (JsonDocument first = JsonDocument.Parse(lines[0]))
            Assert.Equal(1, first.RootElement.GetProperty("step").GetInt32());

        // Per step, NVMe traffic is exact: parameters read for the outer block once and every layer twice
        // (forward and recompute) and written back once; optimizer state [master, m, v] read and written once;
        // fp32 gradients (which follow the optimizer to NVMe) written at backward and read by the optimizer.
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        long paramBytes = 4 * ((spec.EmbeddingParameters + spec.HeadParameters) + 2L * spec.NumLayers * spec.LayerParameters);
        long optimizerBytes = 12 * spec.TotalParameters, gradientBytes = 4 * spec.TotalParameters;
        Assert.All(seen, m => Assert.Equal(paramBytes + optimizerBytes + gradientBytes, m.NvmeReadBytes));
        Assert.All(seen, m => Assert.Equal(4 * spec.TotalParameters + optimizerBytes + gradientBytes, m.NvmeWrittenBytes));
        Assert.All(seen, m => Assert.Equal(paramBytes, m.UploadBytes));
        Assert.All(seen, m => Assert.Equal(4 * spec.TotalParameters, m.DownloadBytes));
        Assert.All(seen, m => Assert.Equal(2L * 32, m.Tokens));
        Assert.All(seen, m => Assert.True(m.PeakResidentBytes > 0));

        string[] trace = File.ReadAllLines(Path.Combine(dir, "trace.jsonl"));
        Assert.Contains(trace, l => l.Contains("\"resource\":\"nvme\"", StringComparison.Ordinal) && l.Contains("\"operation\":\"param_read\"", StringComparison.Ordinal));
        Assert.Contains(trace, l => l.Contains("\"resource\":\"cpu_compute\"", StringComparison.Ordinal) && l.Contains("\"operation\":\"recompute\"", StringComparison.Ordinal));
        Assert.Contains(trace, l => l.Contains("\"resource\":\"cpu_optimizer\"", StringComparison.Ordinal) && l.Contains("\"operation\":\"optimizer_step\"", StringComparison.Ordinal));
        Assert.Contains(trace, l => l.Contains("\"operation\":\"param_write_back\"", StringComparison.Ordinal) && l.Contains("\"layer\":-1", StringComparison.Ordinal));
        Assert.Contains(trace, l => l.Contains("\"operation\":\"grad_write\"", StringComparison.Ordinal));

        Assert.True(summary.Completed);
        Assert.Equal(3, summary.StepsCompleted);
        Assert.Equal(seen[^1].Loss, summary.FinalLoss);
        Assert.True(File.Exists(Path.Combine(dir, "summary.json")));
        Assert.False(Directory.Exists(Path.Combine(nvme, "aios-test-run")));
    }

    [Fact]
    public void Given_SaveEveryTwo_When_ARunIsResumedFromItsFolder_Then_ItContinuesFromTheNewestCheckpointWithTheSameLosses()
    {
        TrainingSettings settings = LayerwiseTrainerTests.Small() with { GradAccumulation = 1 };
        RunSummary whole = EngineRun.Execute(Request(settings, steps: 4) with { Options = LayerwiseTrainerTests.Options() with { RunId = "whole" } });
        RunSummary first = EngineRun.Execute(Request(settings, steps: 3) with { SaveEvery = 2, Options = LayerwiseTrainerTests.Options() with { RunId = "first" } });

        RunSummary second = EngineRun.Execute(Request(settings, steps: 4) with
        {
            ResumeFrom = Path.Combine(_root, "runs", "first"),
            Options = LayerwiseTrainerTests.Options() with { RunId = "second" },
        });

        Assert.EndsWith("step-2", first.LastCheckpoint);
        string[] lines = File.ReadAllLines(Path.Combine(_root, "runs", "second", "metrics.jsonl"));
        Assert.Equal(2, lines.Length);
        Assert.True(second.Completed);
        Assert.Equal(4, second.StepsCompleted);
        Assert.Equal(whole.FinalLoss, second.FinalLoss);
    }

    [Fact]
    public void Given_AMissingDatasetFile_When_Run_Then_ItFailsBeforeWritingAnything()
    {
        var request = Request(LayerwiseTrainerTests.Small()) with { DatasetPath = Path.Combine(_root, "missing.txt") };

        var e = Assert.Throws<FileNotFoundException>(() => EngineRun.Execute(request));

        Assert.Contains("missing.txt", e.Message);
        Assert.False(Directory.Exists(Path.Combine(_root, "runs")));
    }

    [Fact]
    public void Given_SettingsTheEngineRefuses_When_Run_Then_ItFailsBeforeCreatingTheRunFolder()
    {
        var request = Request(LayerwiseTrainerTests.Small() with { Precision = Precision.Fp16 });

        var e = Assert.Throws<ArgumentException>(() => EngineRun.Execute(request));

        Assert.Contains("fp16", e.Message);
        Assert.False(Directory.Exists(Path.Combine(_root, "runs")));
    }

    [Fact]
    public void Given_ACancelledToken_When_Run_Then_TheSummarySaysIncomplete()
    {
        using var cancel = new CancellationTokenSource();
        cancel.Cancel();

        RunSummary summary = EngineRun.Execute(Request(LayerwiseTrainerTests.Small()), null, cancel.Token);

        Assert.False(summary.Completed);
        Assert.Equal(0, summary.StepsCompleted);
    }

    private sealed class SyncProgress(Action<StepMetrics> onStep) : IProgress<StepMetrics>
    {
        public void Report(StepMetrics value) => onStep(value);
    }
}

using AiOs.Planner.Records;
using System.Text.Json;
using AiOs.Planner.Engine.Checkpoints;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Storage;
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
    public void Given_AnOffloadedRun_When_Run_Then_TheSummaryListsTheStartupPhasesInOrderWithinTheStartup()
    {
        TrainingSettings settings = LayerwiseTrainerTests.Small() with { ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, GradAccumulation = 1 };
        var request = Request(settings, steps: 2) with { PreludePhases = [new StartupPhase("auto-tune", 0.25)] };

        RunSummary summary = EngineRun.Execute(request);

        var phases = Assert.IsAssignableFrom<IReadOnlyList<StartupPhase>>(summary.StartupPhases);
        Assert.Equal("auto-tune", phases[0].Name);
        Assert.Equal(0.25, phases[0].Seconds);
        Assert.Contains(phases, p => p.Name == "initial weights into their tiers");
        Assert.Equal("kernel warm-up", phases[^1].Name);
        Assert.All(phases, p => Assert.True(p.Seconds >= 0));
        // The phases cover the start-up: together no more than it (the clock reads differ by microseconds) and most of it.
        double total = phases.Sum(p => p.Seconds);
        Assert.InRange(total, 0.5 * summary.StartupSeconds!.Value, summary.StartupSeconds.Value + 0.05);
    }

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
        // Every program span names its operation's phase, as predicted spans do; stalls (op id −1) name none.
        Assert.Contains(trace, l => l.Contains("\"operation\":\"optimizer_step\"", StringComparison.Ordinal) && l.Contains("\"phase\":\"optimizer\"", StringComparison.Ordinal));
        Assert.Contains(trace, l => l.Contains("\"operation\":\"forward\"", StringComparison.Ordinal) && l.Contains("\"phase\":\"forward\"", StringComparison.Ordinal));
        Assert.Contains(trace, l => l.Contains("\"operation\":\"recompute\"", StringComparison.Ordinal) && l.Contains("\"phase\":\"backward\"", StringComparison.Ordinal));
        Assert.DoesNotContain(trace, l => l.Contains("\"op_id\":-1", StringComparison.Ordinal) && l.Contains("\"phase\":", StringComparison.Ordinal));

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
        var request = Request(LayerwiseTrainerTests.Small() with { Precision = Precision.Fp16, Schedule = StepSchedule.Overlapped });

        var e = Assert.Throws<ArgumentException>(() => EngineRun.Execute(request));

        Assert.Contains("fp16", e.Message);
        Assert.False(Directory.Exists(Path.Combine(_root, "runs")));
    }

    [Fact]
    public void Given_InitFromTogetherWithResume_When_Run_Then_ItIsRefusedBeforeCreatingTheRunFolderSayingWhy()
    {
        var request = Request(LayerwiseTrainerTests.Small()) with { ResumeFrom = Path.Combine(_root, "old-run") };
        request = request with { Options = request.Options with { InitFrom = Path.Combine(_root, "weights") } };

        var e = Assert.Throws<ArgumentException>(() => EngineRun.Execute(request));

        Assert.Contains("--init-from and --resume cannot be combined", e.Message);
        Assert.Contains("optimizer moments", e.Message);
        Assert.False(Directory.Exists(Path.Combine(_root, "runs")));
    }

    [Fact]
    public void Given_InitFromWeightsWithAnExtraTensor_When_Run_Then_TheWarningIsToldAndRecordedAndTheFirstLossIsThatOfTheFilesWeights()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        var tensors = HfLayout.Gpt2(spec, Model.InitialWeights.Create(spec, 3));
        tensors.Add(("extra.weight", [2], [1, 2]));
        string weights = Path.Combine(_root, "gpt2.safetensors");
        SafeTensors.Write(weights, tensors, dtype: "F32");
        TrainingSettings settings = LayerwiseTrainerTests.Small() with { ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu };
        var warned = new List<string>();
        var request = Request(settings, steps: 1) with { OnWarning = warned.Add };
        request = request with { Options = request.Options with { InitFrom = weights } };
        // The weights of seed 3, on the batches of the run's seed (42).
        var data = Data.TokenDataset.Load(Data.BundledText.DefaultPath);
        double expected;
        using (var reference = new ReferenceTrainer(spec, settings, LayerwiseTrainerTests.Options() with { Seed = 3 }))
            expected = reference.Step(m => data.Sample(request.Options.Seed, 0, m, settings.MicroBatch, settings.SeqLen)).Loss;

        RunSummary summary = EngineRun.Execute(request);

        Assert.Contains("extra.weight", Assert.Single(warned));
        Assert.Equal(warned, summary.Warnings);
        Assert.Equal(expected, summary.FirstLoss!.Value, 5);
        Assert.Contains("gpt2.safetensors", File.ReadAllText(Path.Combine(_root, "runs", "test-run", "settings.json")));
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

    [Fact]
    public void Given_TheSwapDiskFillsDuringStepThree_When_Run_Then_ItStopsWithAClearErrorAndTheStepTwoCheckpointIntact()
    {
        TrainingSettings settings = LayerwiseTrainerTests.Small() with
        {
            ParamOffload = OffloadTier.Nvme,
            OptimizerOffload = OffloadTier.Nvme,
            NvmePath = Path.Combine(_root, "nvme"),
            GradAccumulation = 1,
        };
        FillingStore? store = null;
        var request = Request(settings, steps: 4) with
        {
            SaveEvery = 2,
            SwapStore = dir => store = new FillingStore(new FileSwapStore(dir)),
        };

        var e = Assert.Throws<IOException>(() => EngineRun.Execute(request, new SyncProgress(m => store!.Full = m.Step == 2)));

        Assert.Contains("No space", e.Message);
        string dir = Path.Combine(_root, "runs", "test-run");
        string summary = File.ReadAllText(Path.Combine(dir, "summary.json"));
        Assert.Contains("\"completed\": false", summary);
        Assert.Contains("No space", summary);
        var (manifest, _) = Checkpoint.Load(Path.Combine(dir, "checkpoints", "step-2"), request.Model);
        Assert.Equal(2, manifest.Step);
        Assert.False(Directory.Exists(Path.Combine(_root, "nvme", "aios-test-run")));
    }

    [Fact]
    public void Given_SaveEvery_When_TheRunIsCancelledAfterStepOne_Then_ACheckpointOfStepOneIsWritten()
    {
        using var cancel = new CancellationTokenSource();
        var request = Request(LayerwiseTrainerTests.Small(), steps: 5) with { SaveEvery = 10 };

        RunSummary summary = EngineRun.Execute(request, new SyncProgress(_ => cancel.Cancel()), cancel.Token);

        Assert.False(summary.Completed);
        Assert.Equal(1, summary.StepsCompleted);
        Assert.EndsWith("step-1", summary.LastCheckpoint);
    }

    /// <summary>A swap store whose writes fail as a full disk's do once <see cref="Full"/> is set.</summary>
    private sealed class FillingStore(ISwapStore inner) : ISwapStore
    {
        public volatile bool Full;

        public void Write(string key, long offset, ReadOnlySpan<byte> data)
        {
            if (Full) throw new IOException("No space left on device");
            inner.Write(key, offset, data);
        }

        public void Read(string key, long offset, Span<byte> destination) => inner.Read(key, offset, destination);

        public void Dispose() => inner.Dispose();
    }

    private sealed class SyncProgress(Action<StepMetrics> onStep) : IProgress<StepMetrics>
    {
        public void Report(StepMetrics value) => onStep(value);
    }
}

using System.Text.Json;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Measurement;
using AiOs.Planner.Records;

namespace AiOs.Planner.Engine.Runs;

/// <summary>
/// What a run has done so far, from which <c>summary.json</c> is written: by the run itself, and from a signal handler's
/// thread while a step is still in progress (<see cref="RunStop"/>). A lock keeps the two from interleaving.
/// </summary>
internal sealed class RunRecord(string dir, EngineRunRequest request, IReadOnlyList<string> warnings)
{
    private readonly object _gate = new();
    private readonly List<StepMetrics> _steps = [];
    private string? _lastCheckpoint, _executor, _stoppedBy;
    private int? _nonFiniteStep;
    private double? _loadAtStart, _startupSeconds;
    private CpuReading? _cpuAtStart;
    private readonly List<StartupPhase> _startupPhases = [];

    /// <summary>Steps this process ran, in order.</summary>
    public int Count
    {
        get { lock (_gate) return _steps.Count; }
    }

    public void Started(string executor)
    {
        // Read here rather than in the constructor: the load the steps start under, and other work over the steps, is what can disturb them.
        double? load = LoadAverage.OneMinute();
        CpuReading? cpu = CpuTimes.Now(GroupRun);
        double? startup = StartupPhaseClock.SinceLaunch();
        lock (_gate)
        {
            _executor = executor;
            _loadAtStart = load;
            _cpuAtStart = cpu;
            _startupSeconds ??= startup;
        }
    }

    /// <summary>A rank of a data-parallel group: the other ranks' CPU time is the run's own, not other work.</summary>
    private bool GroupRun => request.Ranks is { WorldSize: > 1 };

    /// <summary>Notes a phase of the start-up (before <see cref="Started"/>).</summary>
    public void StartupPhase(string name, double seconds)
    {
        long? resident = Metrics.ProcessMemory.ResidentOrNull();
        lock (_gate) _startupPhases.Add(new StartupPhase(name, seconds, resident));
    }

    /// <summary>
    /// Notes <paramref name="parts"/>, then what they leave of <paramref name="whole"/> seconds as <paramref name="rest"/>
    /// (or the whole as <paramref name="alone"/> when there are none): a span that a caller timed in pieces. Without a whole
    /// (the OS does not say when the process started) only the parts.
    /// </summary>
    public void StartupPhases(IReadOnlyList<StartupPhase> parts, double? whole, string rest, string alone)
    {
        lock (_gate) _startupPhases.AddRange(parts);
        if (whole is { } w) StartupPhase(parts.Count > 0 ? rest : alone, Math.Max(0, w - parts.Sum(p => p.Seconds)));
    }

    public void Add(StepMetrics step)
    {
        lock (_gate) _steps.Add(step);
    }

    public void Checkpointed(string folder)
    {
        lock (_gate) _lastCheckpoint = folder;
    }

    public void StoppedBy(string? reason)
    {
        lock (_gate) _stoppedBy ??= reason;
    }

    public void Diverged(int step)
    {
        lock (_gate) _nonFiniteStep = step;
    }

    /// <summary>Writes <c>summary.json</c> (atomically) from the steps so far; returns it.</summary>
    public RunSummary WriteSummary(string? error)
    {
        lock (_gate)
        {
            RunSummary summary = Summarise(error);
            RunFiles.WriteAtomic(Path.Combine(dir, RecordedRun.SummaryFile), JsonSerializer.Serialize(summary, RecordSchema.WriteOptions));
            return summary;
        }
    }

    /// <summary><paramref name="given"/> and what the engine ran differently from its plan (<see cref="HeadFallback"/>).</summary>
    private List<string> WithEngineFallbacks(IReadOnlyList<string> given) =>
        [.. given, .. HeadFallback(request.Settings.HeadLoss, Model.CrossEntropyKernel.Unavailable) is { } head ? [head] : Array.Empty<string>(),
            .. NormsFallback(Execution.SumOfSquaresKernel.Unavailable) is { } norms ? [norms] : Array.Empty<string>()];

    /// <summary>The warning a run's summary carries when Σg² ran on the tensor ops because its kernel did not run (<paramref name="kernelUnavailable"/>: why); null otherwise.</summary>
    internal static string? NormsFallback(string? kernelUnavailable) =>
        kernelUnavailable is { } why
            ? $"the gradient norms ran on the tensor ops, not their kernel: {why}. The plan priced the kernel's 2 bytes per bf16 parameter; the tensor ops move about 10."
            : null;

    /// <summary>
    /// The warning a run's summary carries when its fused head ran on the tensor ops because the kernel did not run
    /// (<paramref name="kernelUnavailable"/>: why), which the plan priced; null otherwise.
    /// </summary>
    internal static string? HeadFallback(Settings.HeadLoss head, string? kernelUnavailable) =>
        head == Settings.HeadLoss.Fused && kernelUnavailable is { } why
            ? $"the fused head ran on the tensor ops, not its kernel: {why}. The plan priced the kernel, so the head's time and device memory are compared against what did not run."
            : null;

    private RunSummary Summarise(string? error)
    {
        List<StepMetrics> steps = _steps;
        // One definition of the steady steps, the throughput and the spread, shared with the reports (Core's StepStatistics).
        var warm = StepStatistics.Steady(steps, Finite);
        double Mean(Func<StepMetrics, double> f) => warm.Count == 0 ? 0 : warm.Average(f);
        var samples = steps.Select(m => new StepSample(m.WallMs, m.Tokens, Finite(m))).ToList();
        StepSpread? spread = StepStatistics.Spread(samples);
        double? loadAtEnd = LoadAverage.OneMinute();
        CpuUse? cpu = _cpuAtStart is { } start && CpuTimes.Now(GroupRun) is { } end ? CpuTimes.Between(start, end) : null;
        var caveats = StepStatistics.Caveats(spread, cpu, _loadAtStart, loadAtEnd, System.Environment.ProcessorCount);
        return new RunSummary
        {
            Schema = RecordSchema.Current,
            RunId = request.Options.RunId,
            Model = request.Model.Name,
            Executor = _executor,
            Dataset = Path.GetFullPath(request.DatasetPath),
            StepsRequested = request.Steps,
            StepsCompleted = steps.Count == 0 ? 0 : steps[^1].Step,
            Completed = steps.Count > 0 && steps[^1].Step == request.Steps && error is null && _nonFiniteStep is null,
            LastCheckpoint = _lastCheckpoint,
            FirstLoss = steps.Count > 0 ? steps[0].Loss : null,
            FinalLoss = steps.Count > 0 ? steps[^1].Loss : null,
            MedianStepMs = spread?.P50Ms ?? 0,
            StepSpread = spread,
            LoadAverageStart = _loadAtStart,
            StartupSeconds = _startupSeconds,
            StartupPhases = _startupPhases.Count > 0 ? _startupPhases.ToList() : null,
            FirstStepRatio = steps.Count > 0 && spread is { P50Ms: > 0 } ? steps[0].WallMs / spread.P50Ms : null,
            LoadAverageEnd = loadAtEnd,
            CpuUse = cpu,
            LogicalCores = System.Environment.ProcessorCount,
            TimingReliable = caveats.Count == 0,
            TimingCaveats = caveats.Count > 0 ? caveats : null,
            MeanForwardMs = Mean(m => m.ForwardMs),
            MeanBackwardMs = Mean(m => m.BackwardMs),
            MeanOptimizerMs = Mean(m => m.OptimizerMs),
            MeanIoStallMs = Mean(m => m.IoStallMs),
            MeanHostPassMs = warm.Count > 0 && warm.All(m => m.HostPassMs is not null) ? warm.Average(m => m.HostPassMs!.Value) : null,
            TokensPerSecond = StepStatistics.TokensPerSecond(samples),
            NvmeReadBytes = steps.Sum(m => m.NvmeReadBytes),
            NvmeWrittenBytes = steps.Sum(m => m.NvmeWrittenBytes),
            CpuReadBytes = steps.Sum(m => m.CpuReadBytes),
            CpuWrittenBytes = steps.Sum(m => m.CpuWrittenBytes),
            PeakResidentBytes = ProcessMemory.PeakResident().Value,
            PeakDeviceBytes = steps.Max(m => m.PeakDeviceBytes),
            PeakNvmeSwapBytes = steps.Max(m => m.NvmeSwapBytes),
            GpuMemoryLimitBytes = request.Options.GpuMemoryLimit?.Value,
            Error = error,
            StoppedBy = _stoppedBy,
            NonFiniteStep = _nonFiniteStep,
            Warnings = WithEngineFallbacks(warnings) is { Count: > 0 } all ? all : null,
            HostHeap = Native.HostHeap.Mode,
        };
    }

    /// <summary>A step whose loss was finite and whose update was applied; the others stay out of every mean.</summary>
    private static bool Finite(StepMetrics m) => m.NonFinite is null && double.IsFinite(m.Loss);
}

using System.Text.Json.Serialization;
using AiOs.Planner.Measurement;

namespace AiOs.Planner.Records;

/// <summary>The whole run, written to <c>summary.json</c>.</summary>
public sealed record RunSummary
{
    /// <summary>The run-record schema (<see cref="RecordSchema.Current"/> when written now; 0 in a file older than the field).</summary>
    public int Schema { get; init; }
    public required string RunId { get; init; }
    public required string Model { get; init; }
    /// <summary>Which executor ran the steps (null when the run failed before it started).</summary>
    public string? Executor { get; init; }
    public required string Dataset { get; init; }
    public required int StepsRequested { get; init; }
    public required int StepsCompleted { get; init; }
    /// <summary>False when the run was cancelled or failed before the last step.</summary>
    public required bool Completed { get; init; }
    /// <summary>Null when no step finished (or, fp16, when a skipped step's loss was not finite).</summary>
    [JsonConverter(typeof(OptionalFiniteOrNullConverter))]
    public required double? FirstLoss { get; init; }
    [JsonConverter(typeof(OptionalFiniteOrNullConverter))]
    public required double? FinalLoss { get; init; }
    /// <summary>Median wall time of steps after the first (the first includes warm-up).</summary>
    public required double MedianStepMs { get; init; }
    /// <summary>Min, p10, p50, p90 and max wall time of the steps after the first (<see cref="StepStatistics.Spread"/>); null without such a step.</summary>
    public StepSpread? StepSpread { get; init; }
    /// <summary>
    /// Seconds from the process's launch to the start of the steps: the runtime, planning, model and data loading, weight
    /// initialisation and pinned pools (issue 14's start-up target); null when no step started or the OS does not say.
    /// </summary>
    public double? StartupSeconds { get; init; }
    /// <summary>The first step's wall time over the median of the later ones (issue 14: at most 1.5); null without both.</summary>
    public double? FirstStepRatio { get; init; }
    /// <summary>Where <see cref="StartupSeconds"/> went, in order (process launch to trainer, the trainer's own phases, the kernel warm-up); null in older records.</summary>
    public IReadOnlyList<StartupPhase>? StartupPhases { get; init; }
    /// <summary>1-minute load average from <c>/proc/loadavg</c> when the steps started; null when unknown.</summary>
    public double? LoadAverageStart { get; init; }
    /// <summary>1-minute load average when this summary was written; null when unknown.</summary>
    public double? LoadAverageEnd { get; init; }
    /// <summary>
    /// CPU time the machine and this run spent from the start of the steps to this summary, which tells other processes' work
    /// from the run's own (the load averages count both); null off Linux, when <c>/proc</c> could not be read, when no step
    /// started, and in records older than the field.
    /// </summary>
    public CpuUse? CpuUse { get; init; }
    /// <summary>Logical cores of the machine (what the load averages and other processes' cores are compared with).</summary>
    public int LogicalCores { get; init; }
    /// <summary>False when the step times are not fit to compare with a prediction (a wide spread or other work on the machine); <see cref="TimingCaveats"/> says why.</summary>
    public bool TimingReliable { get; init; } = true;
    /// <summary>Why the step times are unreliable (<see cref="StepStatistics.Caveats"/>); null when they are not.</summary>
    public IReadOnlyList<string>? TimingCaveats { get; init; }
    public required double MeanForwardMs { get; init; }
    public required double MeanBackwardMs { get; init; }
    public required double MeanOptimizerMs { get; init; }
    public required double MeanIoStallMs { get; init; }
    /// <summary>Mean of <see cref="StepMetrics.HostPassMs"/> over the steady steps: the host's time queueing the passes; null on a CPU and in older records.</summary>
    public double? MeanHostPassMs { get; init; }
    /// <summary>Total tokens ÷ total wall time of the steps after the first (<see cref="StepStatistics.TokensPerSecond"/>), not a mean of per-step rates.</summary>
    public required double TokensPerSecond { get; init; }
    public required long NvmeReadBytes { get; init; }
    public required long NvmeWrittenBytes { get; init; }
    public required long CpuReadBytes { get; init; }
    public required long CpuWrittenBytes { get; init; }
    public required long PeakResidentBytes { get; init; }
    /// <summary>Highest device memory in use in any step (see <see cref="StepMetrics.PeakDeviceBytes"/>); null on a CPU.</summary>
    public long? PeakDeviceBytes { get; init; }
    /// <summary>Most bytes of swap files on the NVMe folder at the end of any step; null without NVMe offload.</summary>
    public long? PeakNvmeSwapBytes { get; init; }
    /// <summary>The --gpu-memory-limit the run was held to, if any.</summary>
    public long? GpuMemoryLimitBytes { get; init; }
    public string? Error { get; init; }
    /// <summary>The signal (SIGINT, SIGTERM, SIGHUP) or other request that stopped the run early; null when nothing asked it to stop.</summary>
    public string? StoppedBy { get; init; }
    /// <summary>The step whose loss or gradients were not finite, which ended the run without applying its update; null when none.</summary>
    public int? NonFiniteStep { get; init; }
    /// <summary>The newest checkpoint folder this run wrote, if any.</summary>
    public string? LastCheckpoint { get; init; }
    /// <summary>
    /// Warnings about the run: given before training started (for example pretrained tensors left unused), and what the engine
    /// ran differently from its plan (the fused head on the tensor ops where its kernel did not run); null when none.
    /// </summary>
    public IReadOnlyList<string>? Warnings { get; init; }
    /// <summary>How the C heap treated large blocks (the engine's <c>HostHeap.Mode</c>): "reuse", or "system" and why.</summary>
    public string? HostHeap { get; init; }
}

/// <summary>One phase of a run's start-up, its wall time and the process's resident memory when it ended.</summary>
/// <param name="Name">What it did (for example <c>initial weights</c>).</param>
/// <param name="Seconds">Its wall time.</param>
/// <param name="ResidentBytes">
/// The process's resident set (VmRSS) when the phase ended: where a run's host memory grows during start-up, phase by phase;
/// null in records written before 2026-12-06 and where the OS does not say.
/// </param>
public sealed record StartupPhase(string Name, double Seconds, long? ResidentBytes = null);

/// <summary>Times consecutive start-up phases: each <see cref="Mark"/> closes the phase that began at the previous one (or at construction).</summary>
/// <param name="resident">Reads the process's resident set when a phase closes (null: not recorded).</param>
public sealed class StartupPhaseClock(Func<long?>? resident = null)
{
    private readonly List<StartupPhase> _phases = [];
    private long _start = System.Diagnostics.Stopwatch.GetTimestamp();

    /// <summary>The phases closed so far, in order.</summary>
    public IReadOnlyList<StartupPhase> Phases => _phases;

    /// <summary>
    /// A clock whose first phase, <paramref name="name"/>, ran from the process's launch to now (left out where the OS does not
    /// say when the process started). The launch is the fork: a wrapper script that ends in <c>exec aios</c> counts in it.
    /// </summary>
    public static StartupPhaseClock FromLaunch(string name, Func<long?>? resident = null)
    {
        var clock = new StartupPhaseClock(resident);
        if (SinceLaunch() is { } seconds) clock._phases.Add(new StartupPhase(name, seconds, resident?.Invoke()));
        return clock;
    }

    /// <summary>Seconds since this process was launched (the runtime's start included); null where the OS does not say.</summary>
    public static double? SinceLaunch()
    {
        try
        {
            using var self = System.Diagnostics.Process.GetCurrentProcess();
            return (DateTime.Now - self.StartTime).TotalSeconds;
        }
        catch (Exception e) when (e is InvalidOperationException or NotSupportedException or System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }

    /// <summary>Closes the current phase as <paramref name="name"/> and starts the next.</summary>
    public void Mark(string name)
    {
        long now = System.Diagnostics.Stopwatch.GetTimestamp();
        _phases.Add(new StartupPhase(name, System.Diagnostics.Stopwatch.GetElapsedTime(_start, now).TotalSeconds, resident?.Invoke()));
        _start = now;
    }
}

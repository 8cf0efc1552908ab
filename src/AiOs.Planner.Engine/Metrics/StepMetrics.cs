using System.Text.Json.Serialization;
using AiOs.Planner.Engine.Runs;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Metrics;

/// <summary>One line of <c>metrics.jsonl</c>: what one optimizer step took and moved. Times in milliseconds, sizes in bytes.</summary>
public sealed record StepMetrics
{
    public required int Step { get; init; }
    /// <summary>The step's loss; NaN or infinite when it diverged (written as <c>null</c>, see <see cref="NonFinite"/>).</summary>
    [JsonConverter(typeof(FiniteOrNullConverter))]
    public required double Loss { get; init; }
    public required long Tokens { get; init; }
    public required double WallMs { get; init; }
    public required double ForwardMs { get; init; }
    public required double BackwardMs { get; init; }
    /// <summary>Optimizer time not hidden behind backward.</summary>
    public required double OptimizerMs { get; init; }
    /// <summary>Time spent waiting for parameter or optimizer-state reads (both threads).</summary>
    public required double IoStallMs { get; init; }
    public required double TokensPerSecond { get; init; }
    public required long CpuReadBytes { get; init; }
    public required long CpuWrittenBytes { get; init; }
    public required long NvmeReadBytes { get; init; }
    public required long NvmeWrittenBytes { get; init; }
    /// <summary>NVMe bytes read ÷ time the read spans were busy (overlapping reads merged), in GB/s; 0 without NVMe reads.</summary>
    public required double NvmeReadGBps { get; init; }
    /// <summary>As <see cref="NvmeReadGBps"/>, for writes.</summary>
    public required double NvmeWriteGBps { get; init; }
    /// <summary>Parameter bytes copied to the device (host→device, or into the compute buffers on a CPU).</summary>
    public required long UploadBytes { get; init; }
    /// <summary>Gradient bytes copied from the device.</summary>
    public required long DownloadBytes { get; init; }
    /// <summary>Upload bytes ÷ busy time of the upload spans, in GB/s.</summary>
    public required double UploadGBps { get; init; }
    public required long ResidentBytes { get; init; }
    public required long PeakResidentBytes { get; init; }
    /// <summary>The learning rate of the step's update (after warm-up and decay); null when no update was applied.</summary>
    public double? LearningRate { get; init; }
    /// <summary>fp16: the loss scale of the step's backward; null otherwise.</summary>
    public double? LossScale { get; init; }
    /// <summary>fp16: true when the gradients overflowed and the update was skipped.</summary>
    public bool? SkippedStep { get; init; }
    /// <summary>Highest device memory in use during the step (CUDA driver figure: context and the caching allocator's reserve); null on a CPU.</summary>
    public long? PeakDeviceBytes { get; init; }
    /// <summary>What was not a finite number in this step (the loss, a unit's gradients), so its update was not applied and the run stopped; null for a sound step.</summary>
    public string? NonFinite { get; init; }

    /// <summary>Milliseconds of a duration.</summary>
    internal static double Ms(SimDuration d) => d.Nanoseconds / 1e6;
}

/// <summary>The whole run, written to <c>summary.json</c>.</summary>
public sealed record RunSummary
{
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
    /// <summary>Min, p10, p50, p90 and max wall time of the steps after the first (<see cref="AiOs.Planner.Measurement.StepStatistics.Spread"/>); null without such a step.</summary>
    public AiOs.Planner.Measurement.StepSpread? StepSpread { get; init; }
    /// <summary>1-minute load average from <c>/proc/loadavg</c> when the steps started; null when unknown.</summary>
    public double? LoadAverageStart { get; init; }
    /// <summary>1-minute load average when this summary was written; null when unknown.</summary>
    public double? LoadAverageEnd { get; init; }
    /// <summary>Logical cores of the machine (what the load averages are compared with).</summary>
    public int LogicalCores { get; init; }
    /// <summary>False when the step times are not fit to compare with a prediction (a wide spread or a busy machine); <see cref="TimingCaveats"/> says why.</summary>
    public bool TimingReliable { get; init; } = true;
    /// <summary>Why the step times are unreliable (<see cref="AiOs.Planner.Measurement.StepStatistics.Caveats"/>); null when they are not.</summary>
    public IReadOnlyList<string>? TimingCaveats { get; init; }
    public required double MeanForwardMs { get; init; }
    public required double MeanBackwardMs { get; init; }
    public required double MeanOptimizerMs { get; init; }
    public required double MeanIoStallMs { get; init; }
    /// <summary>Total tokens ÷ total wall time of the steps after the first (<see cref="AiOs.Planner.Measurement.StepStatistics.TokensPerSecond"/>), not a mean of per-step rates.</summary>
    public required double TokensPerSecond { get; init; }
    public required long NvmeReadBytes { get; init; }
    public required long NvmeWrittenBytes { get; init; }
    public required long CpuReadBytes { get; init; }
    public required long CpuWrittenBytes { get; init; }
    public required long PeakResidentBytes { get; init; }
    /// <summary>Highest device memory in use in any step (see <see cref="StepMetrics.PeakDeviceBytes"/>); null on a CPU.</summary>
    public long? PeakDeviceBytes { get; init; }
    /// <summary>The --gpu-memory-limit the run was held to, if any.</summary>
    public long? GpuMemoryLimitBytes { get; init; }
    public string? Error { get; init; }
    /// <summary>The signal (SIGINT, SIGTERM, SIGHUP) or other request that stopped the run early; null when nothing asked it to stop.</summary>
    public string? StoppedBy { get; init; }
    /// <summary>The step whose loss or gradients were not finite, which ended the run without applying its update; null when none.</summary>
    public int? NonFiniteStep { get; init; }
    /// <summary>The newest checkpoint folder this run wrote, if any.</summary>
    public string? LastCheckpoint { get; init; }
    /// <summary>Warnings given before training started (for example pretrained tensors left unused); null when none.</summary>
    public IReadOnlyList<string>? Warnings { get; init; }
    /// <summary>How the C heap treated large blocks (<see cref="Native.HostHeap.Mode"/>): "reuse", or "system" and why.</summary>
    public string? HostHeap { get; init; }
}

using System.Text.Json.Serialization;
using AiOs.Planner.Measurement;
using AiOs.Planner.Units;

namespace AiOs.Planner.Records;

/// <summary>
/// One line of <c>metrics.jsonl</c>: what one optimizer step took, moved and held. Times in milliseconds, sizes in bytes. Phases are
/// the engine's (its step result's forward, backward and optimizer). Memory per tier: device (<see cref="PeakDeviceBytes"/>), pinned
/// host (<see cref="PinnedBytes"/>), the process's resident set (<see cref="ResidentBytes"/>, pinned and pageable together) and NVMe
/// (<see cref="NvmeSwapBytes"/>); I/O bytes per tier: host RAM, NVMe, and the copies to and from the device.
/// </summary>
public sealed record StepMetrics
{
    public required int Step { get; init; }
    /// <summary>The step's loss; NaN or infinite when it diverged (written as <c>null</c>); NaN in a hand-made line without the field.</summary>
    [JsonIgnore]
    public double Loss { get; init; } = double.NaN;

    /// <summary>
    /// <see cref="Loss"/> as the file holds it: a number, or <c>null</c> when not finite. Separate so a reader can tell a <c>null</c>
    /// (the engine's "not finite") from a missing field (says nothing about finiteness).
    /// </summary>
    [JsonInclude]
    [JsonPropertyName("loss")]
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    private double? LossField
    {
        get => double.IsFinite(Loss) ? Loss : null;
        init
        {
            Loss = value ?? double.NaN;
            _lossWasNull = value is null;
        }
    }

    private readonly bool _lossWasNull;

    public required long Tokens { get; init; }
    public required double WallMs { get; init; }
    public required double ForwardMs { get; init; }
    public required double BackwardMs { get; init; }
    /// <summary>Optimizer time not hidden behind backward.</summary>
    public required double OptimizerMs { get; init; }
    /// <summary>
    /// Resident GPU runs: the host's time queueing the passes' work (inside the forward, recompute and backward operations, on the
    /// host's clock). <see cref="ForwardMs"/> + <see cref="BackwardMs"/> are the passes on the device's clock, the device's idle
    /// gaps included. Well below them, the host had time to spare and the device was the limit; near them, the host was the
    /// limit or only kept pace (on an H200, 2026-12-07, gpt2-xl at micro-batch 1, launch-bound, and gpt2 at micro-batch 8,
    /// balanced, both read within 3%). Null on a CPU, for the layer-by-layer trainer (its passes wait for the device inside
    /// their spans) and in records older than the field.
    /// </summary>
    public double? HostPassMs { get; init; }
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
    /// <summary>Page-locked host memory the engine held at the end of the step; null when the engine does not count it (on a CPU: none is used).</summary>
    public long? PinnedBytes { get; init; }
    /// <summary>Bytes of the run's swap files on the NVMe folder at the end of the step; null without NVMe offload.</summary>
    public long? NvmeSwapBytes { get; init; }
    /// <summary>What was not a finite number in this step (the loss, a unit's gradients), so its update was not applied and the run stopped; null for a sound step.</summary>
    public string? NonFinite { get; init; }

    /// <summary>
    /// False for a step whose loss or gradients were not finite (its update was not applied, and it stays out of every mean): a
    /// <see cref="NonFinite"/> step, which a line read back with a <c>null</c> loss is (<see cref="Normalised"/>).
    /// </summary>
    [JsonIgnore]
    public bool Finite => NonFinite is null;

    /// <summary>The step as <see cref="StepStatistics"/> takes it.</summary>
    [JsonIgnore]
    public StepSample Sample => new(WallMs, Tokens, Finite);

    /// <summary>Milliseconds of a duration.</summary>
    public static double Ms(SimDuration d) => d.Nanoseconds / 1e6;

    /// <summary>
    /// The line as read from any version: a <c>null</c> loss (not finite) names "loss" in <see cref="NonFinite"/>, and a file without
    /// <c>tokens</c> (older than the field) gets the step's rate × its wall time.
    /// </summary>
    internal StepMetrics Normalised() => this with
    {
        NonFinite = NonFinite ?? (_lossWasNull ? "loss" : null),
        Tokens = Tokens > 0 ? Tokens : (long)Math.Round(TokensPerSecond * WallMs / 1e3),
    };
}


using AiOs.Planner.Memory;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Simulation;

/// <summary>One operation's place in time: the unit of the timeline, predicted or measured.</summary>
public readonly record struct Span(int OpId, ResourceKind Resource, OpKind Kind, StepPhase Phase, int Layer, int MicroBatch, long StartNs, long EndNs, long Bytes);

/// <summary>Bytes that crossed each link in one step, for one GPU process (NVMe: for the node).</summary>
public sealed record Traffic(Bytes NvmeRead, Bytes NvmeWrite, Bytes H2d, Bytes D2h, Bytes Network);

/// <summary>Wall time of each phase: forward until the first backward starts, backward until the last gradient is out, and the optimizer's exposed tail.</summary>
public sealed record PhaseTimes(SimDuration Forward, SimDuration Backward, SimDuration Optimizer);

/// <summary>What the simulator predicts for one step.</summary>
public sealed record StepResult
{
    public required SimDuration Time { get; init; }
    public required PhaseTimes Phases { get; init; }
    /// <summary>Tokens per second across every GPU.</summary>
    public required double TokensPerSecond { get; init; }
    /// <summary>Model FLOPs (forward and backward, no recompute) per second per GPU, in TFLOP/s.</summary>
    public required double ModelTflopsPerGpu { get; init; }
    /// <summary>The resource that holds the critical path longest.</summary>
    public required ResourceKind Bottleneck { get; init; }
    /// <summary>Time each resource spends on the critical path.</summary>
    public required IReadOnlyDictionary<ResourceKind, SimDuration> CriticalPath { get; init; }
    /// <summary>Busy time of each resource.</summary>
    public required IReadOnlyDictionary<ResourceKind, SimDuration> Busy { get; init; }
    public required Traffic Traffic { get; init; }
    /// <summary>Peak of each tier from event-level accounting (GPU per GPU, host and NVMe per node).</summary>
    public required IReadOnlyDictionary<MemoryTier, Bytes> MemoryPeaks { get; init; }
    /// <summary>Level of each tier over the step, when the timeline was kept.</summary>
    public IReadOnlyDictionary<MemoryTier, IReadOnlyList<(long TimeNs, long Bytes)>>? MemoryTimeline { get; init; }
    /// <summary>Every operation's span, when the timeline was kept.</summary>
    public IReadOnlyList<Span>? Spans { get; init; }
    public required int Operations { get; init; }

    /// <summary>Share of the step each resource is busy.</summary>
    public double Utilization(ResourceKind resource) =>
        Time.Nanoseconds == 0 ? 0 : Busy.GetValueOrDefault(resource).Nanoseconds / (double)Time.Nanoseconds;
}

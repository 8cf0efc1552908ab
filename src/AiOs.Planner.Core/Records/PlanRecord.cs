using System.Text.Json.Serialization;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Records;

/// <summary>
/// The <c>aios plan --json</c> document, typed: what <c>prediction.json</c> holds beside a run. Field names (snake_case) are a
/// public contract; <see cref="PlanRecordJson"/> writes and reads them. Built from a plan by <see cref="Planning.PlanDocument.Record"/>.
/// </summary>
public sealed record PlanRecord
{
    /// <summary>The model's shape.</summary>
    public required PlanModel Model { get; init; }
    /// <summary>The machine planned for.</summary>
    public required PlanHardware Hardware { get; init; }
    /// <summary>What the prediction describes: <c>aios</c> (the bundled engine) or <c>deepspeed</c> (DeepSpeed with PyTorch).</summary>
    public string Executor { get; init; } = "deepspeed";
    /// <summary>The resolved settings, as a whole (new settings fields appear without a change here).</summary>
    public required TrainingSettings Settings { get; init; }
    /// <summary>True when the settings are valid and fit every tier.</summary>
    public required bool Feasible { get; init; }
    /// <summary>Why not, when not.</summary>
    public required IReadOnlyList<string> Problems { get; init; }
    /// <summary>What the planner assumed or adjusted.</summary>
    public required IReadOnlyList<string> Notes { get; init; }
    /// <summary>Memory per tier.</summary>
    public required PlanMemory Memory { get; init; }
    /// <summary>DeepSpeed's own estimator for the same stage, where it has one (written as <c>null</c> otherwise).</summary>
    public required PlanDeepSpeedEstimate? DeepspeedEstimate { get; init; }
    /// <summary>The simulated step; absent when memory only was planned or the plan is infeasible.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public PlanStep? Step { get; init; }
    /// <summary>Bytes moved per step; present with <see cref="Step"/>.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public PlanTraffic? Traffic { get; init; }
    /// <summary>Busy ÷ step time of each resource (by its timeline name); present with <see cref="Step"/>.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyDictionary<string, double>? Utilization { get; init; }
    /// <summary>The step's lower bounds (compute, PCIe each way, NVMe, CPU Adam) and the prediction's ratio to each; present with <see cref="Step"/> when the plan offloads to NVMe.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<PlanLowerBound>? LowerBounds { get; init; }
}

/// <summary>One lower bound on the step: the resource, its seconds at the profile's best rate, the work and rate in words, and predicted step ÷ bound.</summary>
/// <param name="Resource">compute, pcie h2d, pcie d2h, nvme or cpu adam.</param>
/// <param name="TimeS">Seconds no step can go below on this resource.</param>
/// <param name="Basis">The work ÷ the rate, in words.</param>
/// <param name="PredictionRatio">The predicted step time ÷ <paramref name="TimeS"/>.</param>
public sealed record PlanLowerBound(string Resource, double TimeS, string Basis, double PredictionRatio);

/// <summary>The model part of a plan.</summary>
public sealed record PlanModel(string Name, long Params, int Layers, int HiddenSize, long LargestLayerParams);

/// <summary>The hardware part of a plan; <see cref="Gpu"/> is null on a machine without one.</summary>
/// <param name="Name">The profile's name (with the limit when one was applied).</param>
/// <param name="Nodes">Nodes planned.</param>
/// <param name="GpusPerNode">GPUs per node planned.</param>
/// <param name="Gpu">The GPU model.</param>
/// <param name="GpuMemoryLimitBytes">The <c>--gpu-memory-limit</c> each GPU was planned with; absent when the whole card was planned.</param>
public sealed record PlanHardware(string Name, int Nodes, int GpusPerNode, string? Gpu,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? GpuMemoryLimitBytes = null);

/// <summary>One item of a tier's breakdown.</summary>
public sealed record PlanMemoryItem(string Name, long Bytes, string? Note);

/// <summary>What each tier holds, item by item.</summary>
public sealed record PlanBreakdown(IReadOnlyList<PlanMemoryItem> Gpu, IReadOnlyList<PlanMemoryItem> CpuPinned, IReadOnlyList<PlanMemoryItem> CpuPageable, IReadOnlyList<PlanMemoryItem> Nvme);

/// <summary>Peak of each tier over the simulated step (per GPU for the device, per node for host and NVMe).</summary>
public sealed record PlanSimulatedPeaks(long GpuBytes, long CpuPinnedBytes, long CpuPageableBytes, long NvmeBytes);

/// <summary>Memory per tier: the planner's peaks and capacities (bytes), and the simulated peaks when a step was simulated.</summary>
public sealed record PlanMemory
{
    /// <summary>Peak bytes the allocator hands out on a GPU.</summary>
    public required long GpuPeakBytes { get; init; }
    /// <summary>Peak bytes reserved on a GPU (the allocator's reserve and the context): what the driver reports.</summary>
    public required long GpuReservedPeakBytes { get; init; }
    public required long GpuCapacityBytes { get; init; }
    /// <summary>The phase at which the GPU peaks.</summary>
    public required string GpuPeakPhase { get; init; }
    /// <summary>Pinned plus pageable host memory at its peak, per node.</summary>
    public required long CpuPeakBytes { get; init; }
    public required long CpuPinnedBytes { get; init; }
    public required long CpuPageableBytes { get; init; }
    public required long CpuCapacityBytes { get; init; }
    public required long NvmeBytes { get; init; }
    public required long NvmeCapacityBytes { get; init; }
    public required long ModelStatesGpuBytes { get; init; }
    public required long ModelStatesCpuBytes { get; init; }
    public required PlanBreakdown Breakdown { get; init; }
    /// <summary>Present when a step was simulated.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public PlanSimulatedPeaks? SimulatedPeaks { get; init; }
}

/// <summary>Seconds of the three phases of a step.</summary>
public sealed record PlanPhases(double ForwardS, double BackwardS, double OptimizerS);

/// <summary>Ratios a learned correction applied per phase.</summary>
public sealed record PlanPhaseRatios(double Forward, double Backward, double Optimizer);

/// <summary>The simulator's own step, before a learned correction.</summary>
public sealed record PlanUncorrected(double TimeS, PlanPhases Phases);

/// <summary>Whether the learned correction was applied, why not, and the simulator's own phases (what a history learns from).</summary>
public sealed record PlanCorrection(bool Corrected, string? Reason, PlanPhaseRatios Ratios, PlanUncorrected Uncorrected);

/// <summary>The simulated step.</summary>
public sealed record PlanStep
{
    public required double TimeS { get; init; }
    /// <summary>The first step (it pays for warm-up); null when not simulated.</summary>
    public required double? FirstStepTimeS { get; init; }
    public required double TokensPerS { get; init; }
    public required double ModelTflops { get; init; }
    /// <summary>The resource on the critical path most, by its timeline name.</summary>
    public required string Bottleneck { get; init; }
    /// <summary>Phases as the simulator defines them (corrected when <see cref="Correction"/> says so).</summary>
    public required PlanPhases Phases { get; init; }
    /// <summary>Seconds each resource spends on the critical path.</summary>
    public required IReadOnlyDictionary<string, double> CriticalPathS { get; init; }
    /// <summary>Operations in the step program.</summary>
    public required int Operations { get; init; }
    /// <summary>Present when the profile has a learned correction.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public PlanCorrection? Correction { get; init; }

    /// <summary>The simulator's own phases: <see cref="PlanCorrection.Uncorrected"/> when a correction was evaluated, else <see cref="Phases"/>.</summary>
    [JsonIgnore]
    public PlanPhases SimulatorPhases => Correction?.Uncorrected.Phases ?? Phases;
}

/// <summary>Bytes one step moves per link.</summary>
public sealed record PlanTraffic(long NvmeReadBytes, long NvmeWriteBytes, long H2dBytes, long D2hBytes, long NetworkBytes);

/// <summary>DeepSpeed's estimator: which function, and its GPU and CPU bytes.</summary>
public sealed record PlanDeepSpeedEstimate(string Estimator, long GpuBytes, long CpuBytes);

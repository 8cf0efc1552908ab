using AiOs.Planner.Units;

namespace AiOs.Planner.Simulation;

/// <summary>
/// How a layer's FLOPs and bytes become time on its device, beyond the profile's rates. A layer's matmuls
/// reach the profile's large-matmul rate only when they are wide: the achieved fraction is
/// <c>h / (h + <see cref="MatmulHalfRateHidden"/>)</c> for hidden size h. Element-wise work (norms,
/// activations, dropout, casts, the loss) is bound by memory bandwidth: its traffic is
/// <see cref="ElementwiseTraffic"/> times the bytes the layer saves for backward. Each layer also pays a
/// fixed cost for launching its kernels, and no unit is faster than its host dispatch floor; each step pays a
/// fixed overhead. Defaults were fitted to PyTorch eager step times on an H200 (docs/simulator.md; regression
/// guards, not validation). The constants are the machine's (host dispatch speed, the knee against its matmul rate),
/// so a profile's <see cref="Hardware.EagerCompute"/> section replaces them (<see cref="For"/>). The <c>deepspeed</c>
/// executor prices with this model; the <c>aios</c> executor with the profile's <see cref="Hardware.EngineKernels"/>
/// when it has them, else with this model too.
/// </summary>
public sealed record ComputeModel
{
    public double MatmulHalfRateHidden { get; init; } = 200;
    public double ElementwiseTraffic { get; init; } = 4.5;
    /// <summary>Fraction of the device's memory bandwidth element-wise kernels reach.</summary>
    public double MemoryEfficiency { get; init; } = 0.7;
    /// <summary>Fixed time per layer forward (backward pays twice): kernel launches and small kernels.</summary>
    public SimDuration LayerOverhead { get; init; } = SimDuration.FromMicroseconds(170);
    /// <summary>
    /// The shortest a unit forward can take (backward: twice): the host's time to dispatch its kernels. At small
    /// micro-batches PyTorch eager is launch-bound and the step stops shrinking with the work (docs/simulator.md).
    /// </summary>
    public SimDuration LayerLaunchFloor { get; init; } = SimDuration.FromMicroseconds(1220);
    /// <summary>
    /// Fixed time per step on the compute device, on top of the units. 0 for PyTorch eager: its optimizer and
    /// zero_grad dispatch overlaps the GPU's work, and the launch-bound runs are explained by the floor alone.
    /// </summary>
    public SimDuration StepOverhead { get; init; } = SimDuration.Zero;
    /// <summary>
    /// A recompute's dispatch in launch floors. 1 prices it as a forward; PyTorch eager's checkpointed recompute
    /// re-enters autograd and the checkpoint's bookkeeping and costs the host more (≈ 2.5 in bf16 autocast on the H100).
    /// </summary>
    public double RecomputeLaunchFloors { get; init; } = 1;

    /// <summary>The recompute's dispatch floor: <see cref="RecomputeLaunchFloors"/> × <see cref="LayerLaunchFloor"/>.</summary>
    public SimDuration RecomputeLaunchFloor => new((long)Math.Round(LayerLaunchFloor.Nanoseconds * RecomputeLaunchFloors));

    public static ComputeModel Default { get; } = new();

    /// <summary>The model of a profile's eager section: its constants, the defaults' memory efficiency and step overhead; null: <see cref="Default"/>.</summary>
    public static ComputeModel For(Hardware.EagerCompute? eager) => eager is null ? Default : Default with
    {
        MatmulHalfRateHidden = eager.MatmulHalfRateHidden.Value,
        ElementwiseTraffic = eager.ElementwiseTraffic.Value,
        LayerOverhead = eager.LayerOverhead,
        LayerLaunchFloor = eager.LayerLaunchFloor,
        RecomputeLaunchFloors = eager.RecomputeLaunchFloors.Value,
    };
}

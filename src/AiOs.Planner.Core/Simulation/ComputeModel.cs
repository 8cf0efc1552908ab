using AiOs.Planner.Units;

namespace AiOs.Planner.Simulation;

/// <summary>
/// How a layer's FLOPs and bytes become time on its device, beyond the profile's rates. A layer's matmuls
/// reach the profile's large-matmul rate only when they are wide: the achieved fraction is
/// <c>h / (h + <see cref="MatmulHalfRateHidden"/>)</c> for hidden size h. Element-wise work (norms,
/// activations, dropout, casts, the loss) is bound by memory bandwidth: its traffic is
/// <see cref="ElementwiseTraffic"/> times the bytes the layer saves for backward. Each layer also pays a
/// fixed cost for launching its kernels. Defaults were fitted to PyTorch eager step times on an H200
/// (docs/simulator.md).
/// </summary>
public sealed record ComputeModel
{
    public double MatmulHalfRateHidden { get; init; } = 200;
    public double ElementwiseTraffic { get; init; } = 4.5;
    /// <summary>Fraction of the device's memory bandwidth element-wise kernels reach.</summary>
    public double MemoryEfficiency { get; init; } = 0.7;
    /// <summary>Fixed time per layer forward (backward pays twice): kernel launches and small kernels.</summary>
    public SimDuration LayerOverhead { get; init; } = SimDuration.FromMicroseconds(170);

    public static ComputeModel Default { get; } = new();
}

using AiOs.Planner.Descriptions;
using AiOs.Planner.Units;

namespace AiOs.Planner.Hardware;

/// <summary>
/// How PyTorch eager's kernels turn a layer's work into time on this GPU, for the <c>deepspeed</c> executor (and the
/// <c>aios</c> executor on a profile without <see cref="EngineKernels"/>): the <see cref="Simulation.ComputeModel"/>
/// constants, which are properties of the machine, not of PyTorch. The launch floor is the host CPU's dispatch speed
/// and the matmul knee is relative to this profile's matmul rate, so constants fitted on one machine predict another
/// badly (H100-fitted ones put the H200's steps 15–21% low). Fitted by <c>aios fit-eager --write-profile</c> to measured
/// eager steps (Calibration/Compute/EagerBaselineFit); without it the planner uses <see cref="Simulation.ComputeModel.Default"/>.
/// </summary>
public sealed record EagerCompute
{
    /// <summary>Hidden size at which a layer's matmuls reach half the profile's large-matmul rate (the knee of h/(h + this)).</summary>
    public required Figure MatmulHalfRateHidden { get; init; }
    /// <summary>Element-wise traffic of a layer, as a multiple of the bytes it saves for backward.</summary>
    public required Figure ElementwiseTraffic { get; init; }
    /// <summary>Fixed device time per unit forward, µs (a backward pays twice).</summary>
    public required Figure LayerOverheadUs { get; init; }
    /// <summary>The host's time to dispatch a unit forward, µs (a backward: twice): the shortest a launch-bound unit takes.</summary>
    public required Figure LayerLaunchFloorUs { get; init; }
    /// <summary>
    /// A checkpointed layer's recompute dispatch, in launch floors: above 1 because the recompute re-enters autograd and
    /// the checkpoint's bookkeeping (≈ 2.5 in bf16 autocast on the lent H100, docs/validation/h100-2026-12-05-session4.md).
    /// </summary>
    public Figure RecomputeLaunchFloors { get; init; } = 1;

    /// <summary>The fixed per-forward device time.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public SimDuration LayerOverhead => SimDuration.FromMicroseconds(LayerOverheadUs.Value);

    /// <summary>The host dispatch floor of one forward.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public SimDuration LayerLaunchFloor => SimDuration.FromMicroseconds(LayerLaunchFloorUs.Value);

    /// <summary>The least recompute dispatch, in launch floors, a profile may declare.</summary>
    public const double MinRecomputeLaunchFloors = 0.1;
    /// <summary>The most recompute dispatch, in launch floors, a profile may declare.</summary>
    public const double MaxRecomputeLaunchFloors = 20;

    internal void Validate(ValidationProblems p, string at)
    {
        p.InRange(at + ".matmul_half_rate_hidden", MatmulHalfRateHidden.Value, 1e-3, 1e6);
        p.InRange(at + ".elementwise_traffic", ElementwiseTraffic.Value, 1e-3, 1e3);
        p.NonNegative(at + ".layer_overhead_us", LayerOverheadUs.Value, HardwareBounds.MaxLatencyUs, " µs");
        p.NonNegative(at + ".layer_launch_floor_us", LayerLaunchFloorUs.Value, HardwareBounds.MaxLatencyUs, " µs");
        p.InRange(at + ".recompute_launch_floors", RecomputeLaunchFloors.Value, MinRecomputeLaunchFloors, MaxRecomputeLaunchFloors, " launch floors");
    }
}

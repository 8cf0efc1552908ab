using AiOs.Planner.Descriptions;
using AiOs.Planner.Units;

namespace AiOs.Planner.Hardware;

/// <summary>
/// How a transformer unit's forward becomes time when the CPU is the training device:
/// <c>FLOPs / (matmul rate × matmul efficiency) + saved bytes / saved-bytes rate + overhead</c>, backward
/// <see cref="BackwardRatio"/> times that. The shape of the GPU's <see cref="Simulation.ComputeModel"/>, with
/// constants fitted to timed decoder layers of this CPU (<c>aios calibrate-cpu</c>) instead of an H200's.
/// </summary>
public sealed record CpuLayerCompute
{
    /// <summary>
    /// Fraction of the CPU's benchmark matmul rate that the units' matmuls reach (smaller, transposed and
    /// bias-fused products run below the benchmark's best shape). Replaces the GPU model's width knee, which on
    /// a CPU cannot be told apart from the element-wise term: both grow as tokens × hidden.
    /// </summary>
    public required Figure MatmulEfficiency { get; init; }
    /// <summary>
    /// Bytes a unit saves for backward that its element-wise work (norms, GELU, softmax, dropout, residual adds)
    /// gets through per second, GB/s: the element-wise traffic per saved byte and the memory rate in one figure.
    /// 0 when the fit found no separate element-wise cost (it is then inside the other two terms).
    /// </summary>
    public required Figure SavedBytesGbps { get; init; }
    /// <summary>Fixed time of one unit's forward, µs: operator dispatch and thread start-up.</summary>
    public required Figure LayerOverheadUs { get; init; }
    /// <summary>
    /// A backward's time over its forward's. Twice the FLOPs would make it 2 (the GPU model's assumption); on a
    /// CPU the backward's GEMMs and element-wise kernels run at other rates than the forward's, so it is measured.
    /// </summary>
    public Figure BackwardRatio { get; init; } = 2;

    /// <summary>
    /// GB/s at which the embedding's backward produces its dense vocabulary × hidden gradient and adds it into the
    /// (tied) weight's gradient, measured as that gradient's bytes over the timed embedding backward. On a CPU
    /// this dense pass costs far more than the few tokens it touches suggest (hundreds of milliseconds for a
    /// 50k vocabulary); null when not measured (the pass is then not charged).
    /// </summary>
    public Figure? VocabGradientGbps { get; init; }

    /// <summary>Time of the embedding backward's dense gradient of <paramref name="bytes"/> (zero when not measured).</summary>
    public SimDuration VocabGradientTime(Bytes bytes) =>
        VocabGradientGbps is { Value: > 0 } rate ? bytes / Bandwidth.FromGBps(rate.Value) : SimDuration.Zero;

    /// <summary>Time of the element-wise work of a unit that saves <paramref name="saved"/> bytes.</summary>
    public SimDuration ElementwiseTime(Bytes saved) =>
        SavedBytesGbps.Value > 0 ? saved / Bandwidth.FromGBps(SavedBytesGbps.Value) : SimDuration.Zero;

    /// <summary>The fixed cost of one forward.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public SimDuration LayerOverhead => SimDuration.FromMicroseconds(LayerOverheadUs.Value);

    internal void Validate(ValidationProblems p, string at)
    {
        // Efficiency is a fit against the benchmark's best shape, so slightly above 1 is possible; 10 is not.
        p.InRange(at + ".matmul_efficiency", MatmulEfficiency.Value, 1e-4, 10);
        // 0 means no separate element-wise term (see SavedBytesGbps); a positive rate must not be so small that times overflow.
        if (SavedBytesGbps.Value != 0) p.InRange(at + ".saved_bytes_gbps", SavedBytesGbps.Value, HardwareBounds.MinLinkGbps, HardwareBounds.MaxMemoryGbps, " GB/s (or 0)");
        p.NonNegative(at + ".layer_overhead_us", LayerOverheadUs.Value, HardwareBounds.MaxLatencyUs, " µs");
        p.InRange(at + ".backward_ratio", BackwardRatio.Value, 0.01, 100);
        if (VocabGradientGbps is { } v) p.InRange(at + ".vocab_gradient_gbps", v.Value, HardwareBounds.MinLinkGbps, HardwareBounds.MaxMemoryGbps, " GB/s");
    }
}

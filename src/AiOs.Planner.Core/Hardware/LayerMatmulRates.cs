using AiOs.Planner.Descriptions;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Hardware;

/// <summary>
/// The rate a decoder layer's four weight products reach at its own shape, measured per precision on a grid of hidden
/// sizes × tokens (<c>aios calibrate-gpu</c>): (T × h)·(h × 3h), (T × h)·(h × h), (T × h)·(h × 4h) and (T × 4h)·(4h × h),
/// their FLOPs over their time. The large-matmul figure (<see cref="GpuSpec.MatmulTflops"/>) is one shape near the device's
/// best; a layer's products run below it, by how much depending on the shape and the precision (on an H100 VM, 2026-12-07,
/// fp32 ran 0.72–0.90 of it at gpt2-xl's micro-batch 2 shapes, bf16 0.68–0.86, and bf16 0.48 at gpt2's micro-batch 1).
/// The engine's layer fit (<see cref="EngineKernels.MatmulEfficiency"/>) is taken against these rates when the kernels carry
/// them, so a precision the fit did not time is priced at its own rate for the shape.
/// </summary>
public sealed record LayerMatmulRates
{
    /// <summary>How the rates were measured (tool, products, repeats, device).</summary>
    public required string Method { get; init; }
    /// <summary>When, ISO date.</summary>
    public required string Date { get; init; }
    /// <summary>One point per (hidden, tokens) of a full grid: every hidden size with the same token counts.</summary>
    public required IReadOnlyList<LayerMatmulPoint> Points { get; init; }

    /// <summary>
    /// The rate at (<paramref name="hidden"/>, <paramref name="tokens"/>) for <paramref name="precision"/> (fp16 takes bf16's
    /// column, as the large-matmul figure does): bilinear in (log hidden, log tokens) between the grid's points, held at the
    /// grid's edge outside it (a layer narrower or shorter than the grid takes the edge's rate, which may be optimistic). Null:
    /// no column for the precision.
    /// </summary>
    public FlopRate? RateAt(Precision precision, int hidden, long tokens)
    {
        if (!HasColumn(precision) || hidden <= 0 || tokens <= 0) return null;
        var column = Column(precision);
        // Interpolated in log rate too: the rates of neighbouring shapes differ by factors, not by amounts.
        double log = LogGrid.At(Points, p => p.Hidden, p => p.Tokens, p => Math.Log(column(p)!.Value), hidden, tokens);
        return FlopRate.FromTflops(Math.Exp(log));
    }

    /// <summary>Whether every point has a positive rate for <paramref name="precision"/> (fp16: bf16's).</summary>
    public bool HasColumn(Precision precision)
    {
        var column = Column(precision);
        return Points is { Count: > 0 } && Points.All(p => p is not null && column(p) is > 0);
    }

    private static Func<LayerMatmulPoint, double?> Column(Precision precision) => precision == Precision.Fp32 ? p => p.Fp32Tflops : p => p.Bf16Tflops;

    /// <summary>The smallest rate a point may hold, TFLOP/s: a CPU's smallest matmul rate (<see cref="HardwareBounds.MinCpuGflops"/>).</summary>
    private const double MinTflops = HardwareBounds.MinCpuGflops / 1000;

    internal void Validate(ValidationProblems p, string at)
    {
        if (string.IsNullOrWhiteSpace(Method)) p.Add(at + ".method", "must say how the rates were measured");
        if (Points is null || Points.Count == 0)
        {
            p.Add(at + ".points", "must list at least one measured shape; remove layer_matmul to price layers at the large-matmul rate");
            return;
        }
        LogGrid.ValidatePoints(p, at + ".points", Points, x => x.Hidden, x => x.Tokens, (pt, k) =>
        {
            // As slow as a CPU device's products (the probe runs there too), so a CPU's smallest rate bounds it below.
            if (pt.Bf16Tflops is { } b) p.InRange(k + ".bf16_tflops", b, MinTflops, HardwareBounds.MaxGpuTflops, " TFLOP/s");
            if (pt.Fp32Tflops is { } f) p.InRange(k + ".fp32_tflops", f, MinTflops, HardwareBounds.MaxGpuTflops, " TFLOP/s");
            // Both: the efficiency was fitted against one column and prices the other precision at its own (a run whose
            // precision had no column would fall back to the large-matmul rate at an efficiency that does not refer to it).
            if (pt.Bf16Tflops is null || pt.Fp32Tflops is null) p.Add(k, "needs both bf16_tflops and fp32_tflops (aios calibrate-gpu measures both)");
        });
    }
}

/// <summary>One measured shape of <see cref="LayerMatmulRates"/>: a layer of width <see cref="Hidden"/> over <see cref="Tokens"/> tokens.</summary>
public sealed record LayerMatmulPoint
{
    public required int Hidden { get; init; }
    public required long Tokens { get; init; }
    /// <summary>bf16 (and fp16) rate of the four products, TFLOP/s.</summary>
    public double? Bf16Tflops { get; init; }
    /// <summary>fp32 rate, TFLOP/s.</summary>
    public double? Fp32Tflops { get; init; }
}

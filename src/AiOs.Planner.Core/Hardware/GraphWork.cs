using AiOs.Planner.Descriptions;

namespace AiOs.Planner.Hardware;

/// <summary>
/// How a decoder layer's work runs when its forward and backward are replayed from CUDA graphs (<c>--cuda-graphs</c>), measured
/// per shape by <c>aios calibrate-gpu</c>: each replayed pass's time beyond its matmul products (priced as in an eager pass, a
/// backward's twice the forward's), in milliseconds per GB (1e9 bytes) of the layer's forward saved bytes.
/// </summary>
/// <remarks>
/// The work fit times each eager pass between two waits for the device, so its fixed term holds what a pass costs around its
/// kernels as well as their small work: the first launches and autograd's hand-over, which a step running ahead of the device
/// hides, and which a replay does not have at all. Fitted on work-bound passes at 2,048 tokens and more, it priced gpt2-xl's
/// replayed layers at micro-batch 1 (1,024 tokens) long on an H100 VM (2026-12-07: backward 30.5 ms planned, 24.1 measured;
/// forward 14.0 against 13.1). The probe replays each timed shape from a graph of the engine's own layer forward (recording
/// autograd, as the resident trainer's does) and backward (autograd's call; the packing of its gradients is left out, as the
/// program prices the landing apart), so these values hold what the trainer replays. They are timed in the calibration's
/// precision (bf16 by default) and price every precision's replays, per GB of that precision's saved bytes: the matmuls'
/// precision is in the products, priced apart.
/// <para>
/// The values are absolute, not multipliers of the fit's element-wise and overhead term (as they were first written): a replay's
/// time beyond its products holds no host time, so it carries to another profile of the same GPU once refitted against that
/// profile's products (its <c>layer_matmul</c> rates and efficiency; the replays' printed times suffice), where a multiplier of
/// the fit's fixed term, which holds host time that differs from one VM to the next, did not. On an H100 VM (2026-12-07) the
/// multipliers priced six <c>--cuda-graphs</c> rows −9…+11% with their own calibration (fixed term 187.5 µs) and −15…−23%
/// copied into the bundled profiles/h100-1x-vm.json (104.7 µs); the values refitted against that profile's products, −11…+3%.
/// </para>
/// </remarks>
public sealed record GraphWork
{
    /// <summary>How the replays were measured and the values fitted (tool, shapes, repeats, device).</summary>
    public required string Method { get; init; }
    /// <summary>When, ISO date.</summary>
    public required string Date { get; init; }
    /// <summary>One point per (hidden, tokens) of a full grid: every hidden size with the same token counts.</summary>
    public required IReadOnlyList<GraphWorkPoint> Points { get; init; }
    /// <summary>
    /// The layer kind (<see cref="EngineLayerKind"/>) whose replays were timed: the values price that kind's layers
    /// (another kind's element-wise work is another size). Null: <see cref="EngineLayerKind.Gpt2"/>.
    /// </summary>
    public string? Kind { get; init; }

    /// <summary>Whether the replays were measured on <paramref name="model"/>'s layer kind.</summary>
    public bool Prices(Models.ModelSpec model) => EngineLayerKind.Of(model) == (Kind ?? EngineLayerKind.Gpt2);

    /// <summary>
    /// The largest value a point may hold, ms/GB: the bundled H100 profile's element-wise work runs at 3,160 GB/s of saved bytes
    /// (0.32 ms/GB), and the bound leaves room for a replay's small fixed work at tiny shapes.
    /// </summary>
    public const double MaxMsPerGb = 1000;

    /// <summary>Milliseconds per GB (1e9 bytes) of <paramref name="seconds"/> over <paramref name="bytes"/>: the points' unit.</summary>
    public static double MsPerGb(double seconds, double bytes) => seconds / bytes * 1e12;

    /// <summary>The seconds <paramref name="msPerGb"/> (the points' unit) gives <paramref name="bytes"/>.</summary>
    public static double Seconds(double msPerGb, double bytes) => msPerGb * bytes / 1e12;

    /// <summary>
    /// The replayed forward's and backward's time beyond their products at (<paramref name="hidden"/>, <paramref name="tokens"/>),
    /// ms per GB of the forward's saved bytes: bilinear in (log hidden, log tokens) between the grid's points, held at its edge
    /// outside it.
    /// </summary>
    public (double ForwardMsPerGb, double BackwardMsPerGb) At(int hidden, long tokens)
    {
        double Mix(Func<GraphWorkPoint, double> value) => LogGrid.At(Points, p => p.Hidden, p => p.Tokens, value, hidden, tokens);
        return (Mix(p => p.ForwardMsPerGb), Mix(p => p.BackwardMsPerGb));
    }

    internal void Validate(ValidationProblems p, string at)
    {
        if (string.IsNullOrWhiteSpace(Method)) p.Add(at + ".method", "must say how the replays were measured");
        if (Kind is { } kind && string.IsNullOrWhiteSpace(kind)) p.Add(at + ".kind", "must not be empty; remove it for GPT-2's kind");
        if (Points is null || Points.Count == 0)
        {
            p.Add(at + ".points", "must list at least one measured shape; remove graph_work to price replayed layers as eager ones");
            return;
        }
        LogGrid.ValidatePoints(p, at + ".points", Points, x => x.Hidden, x => x.Tokens, (pt, k) =>
        {
            p.InRange(k + ".forward_ms_per_gb", pt.ForwardMsPerGb, 0, MaxMsPerGb, " ms/GB");
            p.InRange(k + ".backward_ms_per_gb", pt.BackwardMsPerGb, 0, MaxMsPerGb, " ms/GB");
        });
    }
}

/// <summary>One measured shape of <see cref="GraphWork"/>: a layer of width <see cref="Hidden"/> over <see cref="Tokens"/> tokens.</summary>
public sealed record GraphWorkPoint
{
    public required int Hidden { get; init; }
    public required long Tokens { get; init; }
    /// <summary>
    /// The replayed forward's time beyond its products (the fit's forward matmul time), ms per GB (1e9 bytes) of its saved bytes.
    /// </summary>
    public required double ForwardMsPerGb { get; init; }
    /// <summary>
    /// The replayed backward's time beyond its products (twice the forward's), ms per GB (1e9 bytes) of the forward's saved bytes.
    /// </summary>
    public required double BackwardMsPerGb { get; init; }
}

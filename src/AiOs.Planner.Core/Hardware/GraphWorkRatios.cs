using AiOs.Planner.Descriptions;

namespace AiOs.Planner.Hardware;

/// <summary>
/// How a decoder layer's work runs when its forward and backward are replayed from CUDA graphs (<c>--cuda-graphs</c>), measured
/// per shape by <c>aios calibrate-gpu</c>: each point's multipliers of the fit's element-wise and overhead term (the saved-bytes
/// time plus <see cref="EngineKernels.LayerOverheadUs"/>, and the backward's <see cref="EngineKernels.BackwardWorkRatio"/> times
/// that), its matmuls priced as in an eager pass.
/// </summary>
/// <remarks>
/// The work fit times each eager pass between two waits for the device, so its fixed term holds what a pass costs around its
/// kernels as well as their small work: the first launches and autograd's hand-over, which a step running ahead of the device
/// hides, and which a replay does not have at all. Fitted on work-bound passes at 2,048 tokens and more, it priced gpt2-xl's
/// replayed layers at micro-batch 1 (1,024 tokens) long on an H100 VM (2026-12-07: backward 30.5 ms planned, 24.1 measured;
/// forward 14.0 against 13.1). The probe replays each timed shape from a graph of the engine's own layer forward (recording
/// autograd, as the resident trainer's does) and backward (autograd's call; the packing of its gradients is left out, as the
/// program prices the landing apart), so these multipliers hold what the trainer replays. They are timed in the calibration's precision (bf16 by default) and price every
/// precision's replays: the term they scale is the element-wise work and fixed cost, which the matmuls' precision does not move.
/// </remarks>
public sealed record GraphWorkRatios
{
    /// <summary>How the multipliers were measured (tool, shapes, repeats, device).</summary>
    public required string Method { get; init; }
    /// <summary>When, ISO date.</summary>
    public required string Date { get; init; }
    /// <summary>One point per (hidden, tokens) of a full grid: every hidden size with the same token counts.</summary>
    public required IReadOnlyList<GraphWorkPoint> Points { get; init; }
    /// <summary>
    /// The layer kind (<see cref="EngineLayerKind"/>) whose replays were timed: the multipliers price that kind's layers
    /// (another kind's eager fixed term is another size). Null: <see cref="EngineLayerKind.Gpt2"/>.
    /// </summary>
    public string? Kind { get; init; }

    /// <summary>Whether the multipliers were measured on <paramref name="model"/>'s layer kind.</summary>
    public bool Prices(Models.ModelSpec model) => EngineLayerKind.Of(model) == (Kind ?? EngineLayerKind.Gpt2);

    /// <summary>The largest multiplier a point may hold.</summary>
    public const double MaxRatio = 10;

    /// <summary>
    /// The multipliers at (<paramref name="hidden"/>, <paramref name="tokens"/>): bilinear in (log hidden, log tokens) between the
    /// grid's points, held at its edge outside it.
    /// </summary>
    public (double Forward, double Backward) At(int hidden, long tokens)
    {
        double Mix(Func<GraphWorkPoint, double> value) => LogGrid.At(Points, p => p.Hidden, p => p.Tokens, value, hidden, tokens);
        return (Mix(p => p.Forward), Mix(p => p.Backward));
    }

    internal void Validate(ValidationProblems p, string at)
    {
        if (string.IsNullOrWhiteSpace(Method)) p.Add(at + ".method", "must say how the multipliers were measured");
        if (Kind is { } kind && string.IsNullOrWhiteSpace(kind)) p.Add(at + ".kind", "must not be empty; remove it for GPT-2's kind");
        if (Points is null || Points.Count == 0)
        {
            p.Add(at + ".points", "must list at least one measured shape; remove graph_work to price replayed layers as eager ones");
            return;
        }
        for (int i = 0; i < Points.Count; i++)
        {
            string k = $"{at}.points[{i}]";
            if (Points[i] is not { } pt) { p.Add(k, "must not be null"); continue; }
            p.Positive(k + ".hidden", pt.Hidden, 1 << 20);
            p.Positive(k + ".tokens", pt.Tokens, 1L << 32);
            p.InRange(k + ".forward", pt.Forward, 0, MaxRatio);
            p.InRange(k + ".backward", pt.Backward, 0, MaxRatio);
        }
        LogGrid.ValidateShapes(p, at + ".points", Points.Where(x => x is not null).Select(x => (x.Hidden, x.Tokens)).ToList());
    }
}

/// <summary>One measured shape of <see cref="GraphWorkRatios"/>: a layer of width <see cref="Hidden"/> over <see cref="Tokens"/> tokens.</summary>
public sealed record GraphWorkPoint
{
    public required int Hidden { get; init; }
    public required long Tokens { get; init; }
    /// <summary>The replayed forward's multiplier of the fit's element-wise and overhead term.</summary>
    public required double Forward { get; init; }
    /// <summary>The replayed backward's multiplier of the fit's backward element-wise and overhead term.</summary>
    public required double Backward { get; init; }
}

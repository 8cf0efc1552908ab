using System.Globalization;
using AiOs.Planner.Hardware;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;
using MathNet.Numerics.Statistics;

namespace AiOs.Planner.Calibration.Compute;

/// <summary>The engine's timed kernels on one device, in the terms the fit needs (the CLI maps the engine probe's samples to these).</summary>
/// <param name="Passes">Timed passes of layers and the head; <see cref="LayerTiming.Label"/> is "forward", "recompute" or "backward".</param>
/// <param name="FloorSeconds">A layer forward at a tiny shape: the host's dispatch floor.</param>
/// <param name="OptimizerSeconds">The device AdamW over <paramref name="OptimizerElements"/> elements.</param>
/// <param name="OptimizerElements">Elements of that update.</param>
/// <param name="Matmul">The profile's large-matmul rate for the timed precision (the efficiency refers to it, or, with <paramref name="LayerMatmul"/>, to each pass's shape rate).</param>
/// <param name="Description">How and where it was measured, for the figures' method.</param>
/// <param name="NoGradFloorSeconds">A layer forward without autograd at the tiny shape; NaN: not timed (then <paramref name="FloorSeconds"/>).</param>
/// <param name="BackwardFloorSeconds">A layer backward at the tiny shape; NaN: not timed (then twice <paramref name="FloorSeconds"/>).</param>
/// <param name="MemoryBandwidth">The device's memory bandwidth: the element-wise term's ceiling; null: none.</param>
/// <param name="Kind">The layer kind (<see cref="EngineLayerKind"/>) the passes and floors were timed on; null: GPT-2's.</param>
/// <param name="KindFloors">The dispatch floors of other layer kinds, timed beside (<c>--floor-families</c>); null: none.</param>
/// <param name="InStepFloors">
/// Floors measured inside real steps of the engine's resident trainer, one per kind (the main kind's and others'); where a kind
/// has one, the fit writes it instead of the tiny-shape floors above. Null or a kind absent: the tiny-shape floors.
/// </param>
/// <param name="LayerMatmul">
/// The layer products' measured rates per shape (<see cref="LayerMatmulRates"/>, timed beside the passes); where it has
/// <paramref name="Precision"/>'s column, each pass with its tokens is fitted against its shape's rate and the kernels carry the
/// table. Null: every pass against <paramref name="Matmul"/>.
/// </param>
/// <param name="Precision">The precision the passes ran in (the table's column the fit reads).</param>
/// <param name="Replayed">
/// The layer's forward (recording autograd) and backward replayed from CUDA graphs, one of each per (hidden, tokens) of a full
/// grid (labels "forward" and "backward"); the fit writes their time beyond its products per GB of saved bytes
/// (<see cref="EngineKernels.GraphWork"/>). Null or empty: none timed.
/// </param>
public sealed record EngineKernelTimings(IReadOnlyList<LayerTiming> Passes, double FloorSeconds, double OptimizerSeconds, long OptimizerElements,
    FlopRate Matmul, string Description, double NoGradFloorSeconds = double.NaN, double BackwardFloorSeconds = double.NaN, Bandwidth? MemoryBandwidth = null,
    string? Kind = null, IReadOnlyList<KindFloorTiming>? KindFloors = null, IReadOnlyList<InStepFloorTiming>? InStepFloors = null,
    LayerMatmulRates? LayerMatmul = null, Precision Precision = Precision.Bf16, IReadOnlyList<LayerTiming>? Replayed = null)
{
    /// <summary>
    /// These timings with each pass's shape rate filled in from <see cref="LayerMatmul"/> (passes with known tokens; the kinds'
    /// work passes too); unchanged when the table has no column for <see cref="Precision"/>.
    /// </summary>
    internal EngineKernelTimings WithShapeRates()
    {
        if (!ShapeRated) return this;
        var table = LayerMatmul!;
        // ShapeRated: the table has the precision's column and every pass its tokens, so every pass has a rate.
        LayerTiming Rated(LayerTiming p) => p with { MatmulTflops = table.RateAt(Precision, p.Hidden, p.Tokens)!.Value.Tflops };
        return this with
        {
            Passes = Passes.Select(Rated).ToList(),
            Replayed = Replayed?.Select(Rated).ToList(),
            KindFloors = KindFloors?.Select(k => k with { Work = k.Work?.Select(Rated).ToList() }).ToList(),
        };
    }

    /// <summary>
    /// Whether the fit takes the passes against <see cref="LayerMatmul"/>'s rates (and the kernels carry them): the table has the
    /// precision's column and every pass its tokens (one fit must refer every pass to one kind of rate).
    /// </summary>
    internal bool ShapeRated => LayerMatmul is { } table && table.HasColumn(Precision)
        && Passes.All(p => p.Tokens > 0) && (Replayed ?? []).All(p => p.Tokens > 0) && (KindFloors ?? []).All(k => (k.Work ?? []).All(p => p.Tokens > 0));

    /// <summary>The floor a pass with <paramref name="label"/> ("forward", "recompute", "backward") cannot go below.</summary>
    public double FloorOf(string label) => label switch
    {
        "forward" => double.IsNaN(NoGradFloorSeconds) ? FloorSeconds : NoGradFloorSeconds,
        "backward" => double.IsNaN(BackwardFloorSeconds) ? 2 * FloorSeconds : BackwardFloorSeconds,
        _ => FloorSeconds,
    };
}

/// <summary>The dispatch floors of one layer kind at a tiny shape, timed as <see cref="EngineKernelTimings"/>' own.</summary>
/// <param name="Kind">The layer kind (<see cref="EngineLayerKind.Of"/>).</param>
/// <param name="Family">The model whose layer was timed, for the figures' method.</param>
/// <param name="ForwardSeconds">A layer forward without autograd.</param>
/// <param name="AutogradSeconds">A layer forward recording autograd.</param>
/// <param name="BackwardSeconds">A layer backward.</param>
/// <param name="Work">Work-bound passes of that kind's layer ("forward", "backward"), priced against the main kind's fit; null: none timed.</param>
public sealed record KindFloorTiming(string Kind, string Family, double ForwardSeconds, double AutogradSeconds, double BackwardSeconds,
    IReadOnlyList<LayerTiming>? Work = null);

/// <summary>
/// The dispatch floors of one layer kind measured inside real training steps: medians of the engine's resident trainer's layer
/// spans on a small model of the kind (the engine's <c>InStepFloorProbe</c>).
/// </summary>
/// <param name="Kind">The layer kind (<see cref="EngineLayerKind.Of"/>).</param>
/// <param name="Family">The model whose layer kind was trained.</param>
/// <param name="ForwardSeconds">A layer forward without autograd (the run with activation checkpointing).</param>
/// <param name="AutogradSeconds">A layer forward recording autograd (the run without checkpointing).</param>
/// <param name="BackwardSeconds">A layer backward (the run without checkpointing).</param>
/// <param name="ForwardSpans">Spans behind <paramref name="ForwardSeconds"/>.</param>
/// <param name="AutogradSpans">Spans behind <paramref name="AutogradSeconds"/>.</param>
/// <param name="BackwardSpans">Spans behind <paramref name="BackwardSeconds"/>.</param>
/// <param name="Setup">The model and shape trained, for the figures' method ("tiny-gpt widened to h=768, 4 layers, mb 1 × 64").</param>
/// <param name="LayerwiseForwardSeconds">A layer forward of the layer-by-layer (offloaded) trainer; NaN: not measured.</param>
/// <param name="LayerwiseRecomputeSeconds">A layer recompute of the layer-by-layer trainer; NaN: not measured.</param>
/// <param name="LayerwiseBackwardSeconds">A layer backward of the layer-by-layer trainer; NaN: not measured.</param>
/// <param name="LayerwiseSpans">Spans of each layer-by-layer pass behind those medians.</param>
/// <param name="BesideForwardSeconds">A layer-by-layer forward beside the CPU update (CPU Adam running on the schedules' update threads); NaN: not measured.</param>
/// <param name="BesideRecomputeSeconds">A layer-by-layer recompute beside the CPU update; NaN: not measured.</param>
/// <param name="BesideBackwardSeconds">A layer-by-layer backward beside the CPU update; NaN: not measured.</param>
/// <param name="BesideSpans">Spans of each pass beside the update behind those medians; 0: not measured.</param>
public sealed record InStepFloorTiming(string Kind, string Family, double ForwardSeconds, double AutogradSeconds, double BackwardSeconds,
    int ForwardSpans, int AutogradSpans, int BackwardSpans, string Setup, double LayerwiseForwardSeconds = double.NaN,
    double LayerwiseRecomputeSeconds = double.NaN, double LayerwiseBackwardSeconds = double.NaN, int LayerwiseSpans = 0,
    double BesideForwardSeconds = double.NaN, double BesideRecomputeSeconds = double.NaN, double BesideBackwardSeconds = double.NaN, int BesideSpans = 0)
{
    /// <summary>The method of one of its figures: the pass, the spans it is the median of, and where.</summary>
    internal string Method(string pass, int spans, string description) => string.Create(CultureInfo.InvariantCulture,
        $"aios calibrate-gpu: a layer {pass}, median in-step span of the engine's resident trainer, {Setup}, {spans} spans ({description})");
}

/// <summary>The fitted kernels and how well they explain the timings.</summary>
/// <param name="Kernels">The fitted kernels.</param>
/// <param name="Fit">The layer fit behind them.</param>
/// <param name="Samples">Timed passes given.</param>
/// <param name="Passes">The timed passes as fitted (each with its shape's matmul rate where the fit took one), for <see cref="CpuLayerFitResult.Predict"/>.</param>
/// <param name="Replayed">The passes replayed from CUDA graphs as fitted (each with its shape's matmul rate where the fit took one); empty: none timed.</param>
public sealed record EngineKernelCalibration(EngineKernels Kernels, CpuLayerFitResult Fit, int Samples, IReadOnlyList<LayerTiming> Passes,
    IReadOnlyList<LayerTiming> Replayed);

/// <summary>
/// Fits <see cref="EngineKernels"/> to the engine's timed kernels: the layer model <c>t = F/(η·R) + S·e + O</c> by
/// <see cref="CpuLayerFit"/> (MathNet least squares on relative error; backward as a ratio of the forward), the
/// recompute ratio as the median recompute/forward of the same shapes, the launch floors as the in-step medians where
/// measured (<see cref="EngineKernelTimings.InStepFloors"/>), else the tiny-shape times,
/// and the optimizer's rate as the 28 bytes per parameter the step program charges over the timed update.
/// </summary>
public static class EngineKernelFit
{
    /// <summary>Bytes per parameter the step program charges a device AdamW (read master, m, v, gradient; write master, m, v, working copy).</summary>
    public const int OptimizerBytesPerParameter = 28;

    /// <summary>
    /// The fraction of the rate a pass's matmul term refers to that the engine's units may reach: 1, no better than the
    /// benchmark — the layer products timed alone at the pass's own shape (<see cref="EngineKernelTimings.LayerMatmul"/>), or,
    /// without them, the profile's large-matmul rate (the best of layer-shaped products, measured by the same command).
    /// </summary>
    public const double MaxMatmulEfficiency = 1.0;

    /// <summary>Work-bound passes needed to fit the work terms on them alone.</summary>
    public const int MinimumWorkBoundPasses = 6;

    /// <summary>Work-bound recompute/forward pairs needed to take the recompute's work from their slope.</summary>
    public const int MinimumWorkBoundRecomputes = 3;

    /// <summary>
    /// The recompute's work as a multiple of the forward's: the least-squares slope of recompute time on forward time over
    /// the shapes where both passes are work-bound (at least twice their dispatch floors), at least 1 (a recompute runs the
    /// forward's kernels and keeps their outputs). The intercept is the recompute's extra host time (autograd's recording);
    /// the plan prices it only where the autograd floor exceeds the work (a compute op is the larger of the two), so at
    /// work-bound shapes it is dropped: about 0.15 ms per recompute on the H100 VM, 4% of a 4 ms one. The median ratio it
    /// replaces counted that host time as work, in proportion to the work: on the H100 VM, 2026-12-06, the ratios ran from 1.04 at
    /// h = 2048 × 16 K tokens to 1.85 at h = 768 × 2 K, their median 1.29 priced gpt2-xl's recomputes at 1.99 ms against 1.55
    /// measured in its steps, while recompute − forward stayed 0.15–0.17 ms at the large shapes (slope 0.95). Fewer pairs:
    /// the median of all, as before.
    /// </summary>
    private static (double Ratio, string Method) RecomputeRatioOf(List<(double Recompute, double Forward)> pairs, EngineKernelTimings t, Func<FormattableString, string> I)
    {
        var bound = pairs.Where(p => p.Recompute >= 2 * t.FloorOf("recompute") && p.Forward >= 2 * t.FloorOf("forward")).ToList();
        if (bound.Count >= MinimumWorkBoundRecomputes && bound.Select(p => p.Forward).Distinct().Count() >= 2)
        {
            var (intercept, slope) = MathNet.Numerics.Fit.Line(bound.Select(p => p.Forward).ToArray(), bound.Select(p => p.Recompute).ToArray());
            return (Math.Max(1, slope), I($"aios calibrate-gpu: least-squares slope of recompute on forward time over {bound.Count} work-bound shapes, at least 1 (slope {slope:0.000}, intercept {intercept * 1e6:0} µs of host time) ({t.Description})"));
        }
        var ratios = pairs.Select(p => p.Recompute / p.Forward).OrderBy(v => v).ToArray();
        return (ratios.Length > 0 ? ratios[ratios.Length / 2] : 1, I($"aios calibrate-gpu: median recompute/forward over {ratios.Length} shapes ({t.Description})"));
    }

    /// <summary>Fits the kernels; <paramref name="previous"/> keeps the step overhead, which the per-kernel probe does not time.</summary>
    /// <exception cref="ArgumentException">Too few usable timings (see <see cref="CpuLayerFit.Fit"/>), or a non-positive floor or optimizer time.</exception>
    public static EngineKernelCalibration Fit(EngineKernelTimings t, string date, EngineKernels? previous = null)
    {
        ArgumentNullException.ThrowIfNull(t);
        t = t.WithShapeRates();
        if (!(t.FloorSeconds > 0) || !(t.OptimizerSeconds > 0) || t.OptimizerElements <= 0)
            throw new ArgumentException("The dispatch floor and the optimizer need positive timings.", nameof(t));
        // Passes within twice their dispatch floor measure the host, not the kernels: fit the work terms on the others
        // (all of them when too few are left), and let the floors carry the small shapes.
        var workBound = t.Passes.Where(p => p.Label != "recompute" && p.Seconds >= 2 * t.FloorOf(p.Label)).ToList();
        var fitted = workBound.Count >= MinimumWorkBoundPasses ? workBound : t.Passes.Where(p => p.Label != "recompute").ToList();
        // The layers' matmuls cannot beat the rate they refer to (their shape's, else the large-matmul rate), nor their element-wise work the memory's.
        var fit = CpuLayerFit.Fit(fitted, t.Matmul, new LayerFitBounds(MaxMatmulEfficiency, t.MemoryBandwidth));
        var pairs = t.Passes.Where(p => p.Label == "recompute")
            .Select(r => (Recompute: r, Forward: t.Passes.FirstOrDefault(f => f.Label == "forward" && f.Hidden == r.Hidden && f.Flops == r.Flops)))
            .Where(x => x.Forward is { Seconds: > 0 })
            .Select(x => (Recompute: x.Recompute.Seconds, Forward: x.Forward!.Seconds)).ToList();
        // The profile refuses an efficiency outside (1e-4, 10]: say why here rather than write a profile that will not load.
        if (!(fit.MatmulEfficiency is > 1e-4 and <= 10))
            throw new CalibrationException(string.Create(CultureInfo.InvariantCulture,
                $"The engine's layers ran at {fit.MatmulEfficiency:G3} × {(t.ShapeRated ? "the layer products' measured rates" : "the profile's matmul rate")} ({t.Matmul.Tflops:G3} TFLOP/s large-matmul), outside 0.0001–10 (R² {fit.RSquared:0.000}): the profile's gpu.matmul_tflops for this precision is wrong, or the timings were disturbed (another process on the device). Fix the profile's rate (aios calibrate-gpu measures it) and run again on an idle machine."));
        string I(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
        var (recompute, recomputeMethod) = RecomputeRatioOf(pairs, t, I);
        string against = t.ShapeRated ? ", matmuls against the layer products' measured rate at each pass's shape (layer_matmul)" : "";
        string method = I($"aios calibrate-gpu: {fitted.Count} work-bound timed passes of the engine's layers and head ({t.Description}), fitted by least squares on relative error (R² {fit.RSquared:0.000}, RMS error {fit.RmsRelativeError:0.0%}, terms: {string.Join(", ", fit.Terms)}{against})");
        Figure F(double value, string m) => Figure.Measured(Math.Round(value, 4), date, m);
        var inStep = InStepOf(t, t.Kind ?? EngineLayerKind.Gpt2);
        var layerwise = inStep is { } lw ? LayerwiseRatiosOf(lw, t.Description, F) : null;
        var backwardWork = BackwardWorkRatioOf(fit, t.Passes.Where(p => p.Label == "backward" && p.Seconds >= 2 * t.FloorOf("backward")).ToList());
        var kernels = new EngineKernels
        {
            MatmulEfficiency = F(fit.MatmulEfficiency, method),
            LayerMatmul = t.ShapeRated ? t.LayerMatmul : null,
            LargeMatmulEfficiency = t.ShapeRated ? F(LargeRateEfficiency(fit, fitted, t.Matmul), I($"aios calibrate-gpu: the fitted efficiency against the layer products' shape rates × their FLOP-weighted harmonic mean over the {fitted.Count} fitted passes ÷ the large-matmul rate ({t.Matmul.Tflops:0.0} TFLOP/s); prices the head and embedding ({t.Description})")) : null,
            SavedBytesGbps = F(fit.SavedBytesRate.GBps, method),
            LayerOverheadUs = F(fit.Overhead.Seconds * 1e6, method),
            BackwardRatio = F(fit.BackwardRatio, method),
            BackwardWorkRatio = backwardWork is { } work
                ? F(work.Ratio, I($"aios calibrate-gpu: least squares on relative error of backward − 2 × the fitted forward matmul time on the fitted forward's saved-bytes and overhead time, over {work.Passes} work-bound backward passes ({t.Description})"))
                : null,
            RecomputeRatio = F(recompute, recomputeMethod),
            LayerLaunchFloorUs = inStep is { } f
                ? F(f.ForwardSeconds * 1e6, f.Method("forward without autograd", f.ForwardSpans, t.Description))
                : F(t.FloorOf("forward") * 1e6, I($"aios calibrate-gpu: a layer forward without autograd at a tiny shape, median ({t.Description})")),
            AutogradLaunchFloorUs = inStep is { } a
                ? F(a.AutogradSeconds * 1e6, a.Method("forward with autograd", a.AutogradSpans, t.Description))
                : F(t.FloorSeconds * 1e6, I($"aios calibrate-gpu: a layer forward with autograd at a tiny shape, median ({t.Description})")),
            LayerwiseFloorRatios = layerwise,
            // Over the layer-by-layer passes alone, so only beside their ratios (without them the plan scales the resident floors).
            BesideUpdateFloorRatios = layerwise is not null && inStep is { } bu ? BesideUpdateRatiosOf(bu, t.Description, F) : null,
            BackwardLaunchFloorUs = inStep is { } b
                ? F(b.BackwardSeconds * 1e6, b.Method("backward", b.BackwardSpans, t.Description))
                : F(t.FloorOf("backward") * 1e6, I($"aios calibrate-gpu: a layer backward at a tiny shape, median ({t.Description})")),
            FloorKind = t.Kind,
            KindFloors = KindFloors(t, date, previous, WorkPricer(fit, t, backwardWork?.Ratio)),
            StepOverheadUs = previous?.StepOverheadUs ?? 0,
            GraphWork = GraphWorkOf(fit, t, date),
            OptimizerGbps = F((double)OptimizerBytesPerParameter * t.OptimizerElements / t.OptimizerSeconds / 1e9,
                I($"aios calibrate-gpu: the engine's device AdamW over {t.OptimizerElements:N0} elements, {OptimizerBytesPerParameter} B per parameter, median ({t.Description})")),
        };
        return new EngineKernelCalibration(kernels, fit, t.Passes.Count, t.Passes, t.Replayed ?? []);
    }

    /// <summary>
    /// The replayed passes' time beyond the fitted products per GB of saved bytes (<see cref="EngineKernels.GraphWork"/>): with M
    /// a pass's forward products as the fit prices them (<see cref="ForwardProducts"/>) and S the forward's saved bytes, a replayed
    /// forward t takes (t − M) / S and a replayed backward (t − 2M) / S (twice the forward's products, as the simulator prices a
    /// replayed backward whatever the backward work ratio), in ms/GB, held to [0, <see cref="GraphWork.MaxMsPerGb"/>] (below
    /// 0 the replay ran faster than its products are priced: nothing is left beyond them). Neither the fit's element-wise rate nor
    /// its fixed term enters, so the values carry to another profile of the same GPU once refitted against its products. Shapes are told apart by width and tokens
    /// (the probe's shapes share one sequence length). Null without a forward and a backward replay at every shape of a full
    /// grid, or where a shape's saved bytes are not positive.
    /// </summary>
    private static GraphWork? GraphWorkOf(CpuLayerFitResult fit, EngineKernelTimings t, string date)
    {
        if (t.Replayed is not { Count: > 0 } replayed) return null;
        var points = new List<GraphWorkPoint>();
        foreach (var shape in replayed.GroupBy(p => (p.Hidden, p.Tokens)).OrderBy(g => g.Key.Hidden).ThenBy(g => g.Key.Tokens))
        {
            var forward = shape.FirstOrDefault(p => p.Label == "forward");
            var backward = shape.FirstOrDefault(p => p.Label == "backward" && p.Backward);
            if (forward is null || backward is null) return null;
            // The replay's time beyond its products per GB of the forward's saved bytes.
            static double? MsPerGb(LayerTiming p, double products) => p.SavedBytes > 0
                ? Math.Round(Math.Clamp(GraphWork.MsPerGb(p.Seconds - products, p.SavedBytes), 0, GraphWork.MaxMsPerGb), 4)
                : null;
            if (MsPerGb(forward, ForwardProducts(fit, t, forward)) is not { } f || MsPerGb(backward, 2 * ForwardProducts(fit, t, backward)) is not { } b) return null;
            points.Add(new GraphWorkPoint { Hidden = shape.Key.Hidden, Tokens = shape.Key.Tokens, ForwardMsPerGb = f, BackwardMsPerGb = b });
        }
        int hs = points.Select(p => p.Hidden).Distinct().Count(), ts = points.Select(p => p.Tokens).Distinct().Count();
        if (points.Count != hs * ts) return null;
        return new GraphWork
        {
            Method = string.Create(CultureInfo.InvariantCulture,
                $"aios calibrate-gpu: the layer's forward (recording autograd) and backward (its gradients' packing left out: the plan prices the landing apart) replayed from CUDA graphs, median time of each beyond the fitted products (a backward's twice the forward's) per GB of the forward's saved bytes, {points.Count} shapes ({t.Description})"),
            Date = date,
            Points = points,
            Kind = t.Kind,
        };
    }

    /// <summary>
    /// The efficiency the fitted passes' products reach against <paramref name="large"/>: the same matmul time
    /// Σ F/(η·r) over <paramref name="passes"/> as Σ F/(η′·R), so η′ = η · Σ F / Σ (F · R / r).
    /// </summary>
    private static double LargeRateEfficiency(CpuLayerFitResult fit, IReadOnlyList<LayerTiming> passes, FlopRate large)
    {
        double flops = passes.Sum(p => p.Flops), atLarge = passes.Sum(p => p.FlopsAt(large));
        return atLarge > 0 ? fit.MatmulEfficiency * flops / atLarge : fit.MatmulEfficiency;
    }

    /// <summary>
    /// The layer-by-layer trainer's floors over the resident trainer's, per pass (forward without autograd over the no-grad
    /// floor, recompute over the autograd floor, backward over the backward floor), from the same kind's in-step runs; null
    /// when the layer-by-layer run was not measured or any ratio is outside the profile's range.
    /// </summary>
    private static LayerwiseFloorRatios? LayerwiseRatiosOf(InStepFloorTiming s, string description, Func<double, string, Figure> f)
    {
        // Outside what a profile accepts (a disturbed run; on a CPU device the offloaded trainer's passes are no floors at all):
        // none written, the resident floors price both trainers, as without the run.
        return Ratios((s.LayerwiseForwardSeconds / s.ForwardSeconds, s.LayerwiseRecomputeSeconds / s.AutogradSeconds, s.LayerwiseBackwardSeconds / s.BackwardSeconds),
            MinLayerwiseFloorRatio, f, string.Create(CultureInfo.InvariantCulture,
                $"aios calibrate-gpu: median in-step span of the layer-by-layer trainer's layer passes (parameters and optimizer in CPU RAM) over the resident trainer's floor of the same pass, {s.Setup}, {s.LayerwiseSpans} spans each ({description})"));
    }

    /// <summary>Three per-pass ratios as figures of <paramref name="method"/>; null when any is outside [<paramref name="min"/>, <see cref="MaxLayerwiseFloorRatio"/>] (or NaN).</summary>
    private static LayerwiseFloorRatios? Ratios((double Forward, double Recompute, double Backward) r, double min, Func<double, string, Figure> f, string method)
    {
        bool Plausible(double x) => x >= min && x <= MaxLayerwiseFloorRatio;
        return Plausible(r.Forward) && Plausible(r.Recompute) && Plausible(r.Backward)
            ? new LayerwiseFloorRatios { Forward = f(r.Forward, method), Recompute = f(r.Recompute, method), Backward = f(r.Backward, method) }
            : null;
    }

    /// <summary>
    /// The layer-by-layer trainer's passes beside the CPU update (CPU Adam kept running on the overlapped and delayed
    /// schedules' update threads through the steps) over the same passes in its steps without one; null when not measured or any ratio is outside the profile's range.
    /// </summary>
    private static LayerwiseFloorRatios? BesideUpdateRatiosOf(InStepFloorTiming s, string description, Func<double, string, Figure> f)
    {
        if (s.BesideSpans == 0) return null;
        // The update can only slow the passes beside it: a ratio below 1 (the delayed schedule's few overlapped spans on a noisy
        // host measured 0.87 for the backward on one H100 VM where another measured 1.30) says the probe did not see the
        // effect, and nothing is written.
        return Ratios((s.BesideForwardSeconds / s.LayerwiseForwardSeconds, s.BesideRecomputeSeconds / s.LayerwiseRecomputeSeconds, s.BesideBackwardSeconds / s.LayerwiseBackwardSeconds),
            1, f, string.Create(CultureInfo.InvariantCulture,
                $"aios calibrate-gpu: median in-step span of the layer-by-layer trainer's layer passes with CPU Adam running beside them on the overlapped and delayed schedules' update threads over the same passes without it, {s.Setup}, {s.BesideSpans} spans each ({description})"));
    }

    /// <summary>The range of a layer-by-layer floor ratio a profile accepts (<c>engine_kernels.layerwise_floor_ratios</c>' validation).</summary>
    public const double MinLayerwiseFloorRatio = 0.1, MaxLayerwiseFloorRatio = 10;

    /// <summary>Work-bound backward passes needed to fit <see cref="EngineKernels.BackwardWorkRatio"/>.</summary>
    public const int MinimumBackwardPasses = 2;

    /// <summary>The largest work ratio a profile accepts (<c>engine_kernels.backward_work_ratio</c>'s validation).</summary>
    public const double MaxBackwardWorkRatio = 100;

    /// <summary>
    /// The backward's work ratio (<see cref="EngineKernels.BackwardWorkRatio"/>): with the forward's fitted matmul time M and
    /// rest W (saved bytes and overhead) per pass, the r that minimises Σ((2M + rW − b) / b)² over the backward passes b,
    /// in closed form r = Σ (W/b)(1 − 2M/b) / Σ (W/b)². The caller passes the work-bound backward passes only (a launch-bound
    /// one measures the host, and would push r up whatever the fit's own fallback to all passes). Null with fewer than
    /// <see cref="MinimumBackwardPasses"/> passes, no rest term, or an r outside [0, <see cref="MaxBackwardWorkRatio"/>]
    /// (the matmuls alone would take longer than the passes, or a vanishing rest term would carry the whole backward):
    /// the whole-ratio model is kept, and no profile is written that would not load.
    /// </summary>
    internal static (double Ratio, int Passes)? BackwardWorkRatioOf(CpuLayerFitResult fit, IReadOnlyList<LayerTiming> passes)
    {
        double num = 0, den = 0;
        int n = 0;
        foreach (var b in passes.Where(p => p.Backward && p.Seconds > 0))
        {
            double matmul = b.Flops / (b.MatmulRate(fit.Matmul) * fit.MatmulEfficiency);
            double rest = fit.Predict(b with { Backward = false }) - matmul;
            num += rest / b.Seconds * (1 - 2 * matmul / b.Seconds);
            den += rest / b.Seconds * (rest / b.Seconds);
            n++;
        }
        if (n < MinimumBackwardPasses || !(den > 0)) return null;
        double r = num / den;
        return r is >= 0 and <= MaxBackwardWorkRatio ? (r, n) : null;
    }

    /// <summary>The first in-step floors of <paramref name="kind"/> in <paramref name="t"/>; null: none measured.</summary>
    /// <exception cref="ArgumentException">They are not all positive.</exception>
    private static InStepFloorTiming? InStepOf(EngineKernelTimings t, string kind) =>
        t.InStepFloors?.FirstOrDefault(k => k.Kind == kind) is { } s ? Positive(s) : null;

    /// <exception cref="ArgumentException"><paramref name="s"/>'s floors are not all positive.</exception>
    private static InStepFloorTiming Positive(InStepFloorTiming s) => s.ForwardSeconds > 0 && s.AutogradSeconds > 0 && s.BackwardSeconds > 0 ? s
        : throw new ArgumentException($"The in-step floors of {s.Family} ({s.Kind}) need positive timings; measure them again or pass none (the tiny-shape floors are used then).", nameof(s));

    /// <summary>
    /// What the main kind's fit prices a pass at, as the simulator does (StepCosts): matmuls at the fitted efficiency, the
    /// element-wise term and the overhead; a backward twice the matmuls and the work ratio of the rest (else the backward ratio).
    /// </summary>
    /// <remarks>In three parts that add to the price: the matmuls', the element-wise work's (saved bytes) and the fixed overhead's.</remarks>
    private static Func<LayerTiming, WorkParts> WorkPricer(CpuLayerFitResult fit, EngineKernelTimings t, double? backwardWork) => p =>
    {
        double products = ForwardProducts(fit, t, p);
        double elementwise = fit.SavedBytesRate.BytesPerSecond > 0 ? p.SavedBytes / fit.SavedBytesRate.BytesPerSecond : 0, overhead = fit.Overhead.Seconds;
        double m = !p.Backward ? 1 : backwardWork is { } ? 2 : fit.BackwardRatio, r = !p.Backward ? 1 : backwardWork ?? fit.BackwardRatio;
        return new WorkParts(m * products, r * elementwise, r * overhead);
    };

    /// <summary>
    /// The fitted time of a pass's forward products, s: its FLOPs (a backward's are its forward's) at its shape's rate (else the
    /// single rate) × the fitted efficiency. A backward's products are twice it.
    /// </summary>
    private static double ForwardProducts(CpuLayerFitResult fit, EngineKernelTimings t, LayerTiming p) => p.Flops / (p.MatmulRate(t.Matmul) * fit.MatmulEfficiency);

    /// <summary>A pass's price in the main fit (<see cref="WorkPricer"/>), in its three terms.</summary>
    private readonly record struct WorkParts(double Products, double Elementwise, double Overhead)
    {
        public double Price => Products + Elementwise + Overhead;
    }

    /// <summary>
    /// The kind's measured work over the main fit's price (<see cref="WorkPricer"/>), the median over its timed passes of
    /// <paramref name="backward"/>'s direction, divided by the main kind's own measured-over-price at the same hidden size (its
    /// work-bound pass of that direction with the most FLOPs in <paramref name="t"/>, as the kind's is that width's shape of most tokens), so the ratio is the kind's difference, not the fit's local
    /// error at that one width carried to every width; null where none was timed or the ratio is outside the profile's range.
    /// </summary>
    /// <remarks>
    /// Beside it, the same difference put on the element-wise work alone (<see cref="LayerKindFloors.ForwardElementwiseRatio"/>):
    /// the median of (measured ÷ the main kind's error − the matmuls' and the overhead's price) ÷ the element-wise work's price.
    /// </remarks>
    private static (Figure? Whole, Figure? Elementwise) WorkRatios(KindFloorTiming? k, bool backward, Func<LayerTiming, WorkParts> parts, EngineKernelTimings t, string date)
    {
        // Work-bound passes only (twice the kind's dispatch floor at least, as the main fit keeps): a pass mostly of host time
        // would read as heavy work.
        string label = backward ? "backward" : "forward";
        double floor = k is null ? 0 : backward ? k.BackwardSeconds : k.ForwardSeconds;
        var passes = (k?.Work ?? []).Where(p => p.Label == label && p.Backward == backward && p.Seconds >= 2 * floor && p.Seconds > 0)
            .Select(p => (Pass: p, Parts: parts(p))).Where(x => x.Parts.Price > 0).ToList();
        if (passes.Count == 0) return (null, null);
        var widths = passes.Select(x => x.Pass.Hidden).ToHashSet();
        // The main kind's pass of the most work at that width: the kind's pass is that width's shape of most tokens.
        var main = t.Passes.Where(p => p.Label == label && p.Backward == backward && widths.Contains(p.Hidden) && p.Seconds >= 2 * t.FloorOf(label) && parts(p).Price > 0)
            .GroupBy(p => p.Hidden).Select(g => g.MaxBy(p => p.Flops)!).ToList();
        double mainError = main.Count > 0 ? Statistics.Median(main.Select(p => p.Seconds / parts(p).Price)) : 1;
        double whole = Statistics.Median(passes.Select(x => x.Pass.Seconds / x.Parts.Price)) / mainError;
        double? elementwise = passes.All(x => x.Parts.Elementwise > 0)
            ? Statistics.Median(passes.Select(x => (x.Pass.Seconds / mainError - x.Parts.Products - x.Parts.Overhead) / x.Parts.Elementwise))
            : null;
        Figure? Ratio(double? r, string what) => r is >= 0.1 and <= 10
            ? Figure.Measured(Math.Round(r.Value, 4), date, string.Create(CultureInfo.InvariantCulture,
                $"aios calibrate-gpu: a {k!.Family} layer {label} at work-bound shapes, {what} (the main kind's error: its own measured ÷ price at that width's shape of most work, {mainError:0.000}) ({t.Description})"))
            : null;
        return (Ratio(whole, $"over the main kind's fit's price, median of {passes.Count}, ÷ the main kind's error"),
            Ratio(elementwise, $"the measured time ÷ the main kind's error, less the fit's matmul and overhead price, over the fit's price of its element-wise work (saved bytes), median of {passes.Count}"));
    }

    /// <summary>
    /// The other layer kinds' floors: those measured now (one per kind, not the main kind; in-step floors where a kind has
    /// them, else the tiny-shape ones), then <paramref name="previous"/>'s entries for kinds not measured now (each keeps its
    /// own date); null when there are none. Each kind measured now carries its work ratios to the main fit (<paramref name="price"/>).
    /// </summary>
    /// <exception cref="ArgumentException">A measured kind floor is not positive.</exception>
    private static List<LayerKindFloors>? KindFloors(EngineKernelTimings t, string date, EngineKernels? previous, Func<LayerTiming, WorkParts> price)
    {
        KindFloorTiming? ProbeOf(string kind) => t.KindFloors?.FirstOrDefault(k => k.Kind == kind);
        string main = t.Kind ?? EngineLayerKind.Gpt2;
        var seen = new HashSet<string>(StringComparer.Ordinal) { main };
        var result = new List<LayerKindFloors>();
        Figure Us(double seconds, string method) => Figure.Measured(Math.Round(seconds * 1e6, 4), date, method);
        // In-step floors first (the trainer's own layers in real steps), then the probe's for kinds they do not cover.
        foreach (var k in t.InStepFloors ?? [])
        {
            if (!seen.Add(k.Kind)) continue;
            Positive(k);
            var (forward, backward) = (WorkRatios(ProbeOf(k.Kind), false, price, t, date), WorkRatios(ProbeOf(k.Kind), true, price, t, date));
            result.Add(new LayerKindFloors
            {
                Kind = k.Kind,
                ForwardUs = Us(k.ForwardSeconds, k.Method("forward without autograd", k.ForwardSpans, t.Description)),
                AutogradUs = Us(k.AutogradSeconds, k.Method("forward with autograd", k.AutogradSpans, t.Description)),
                BackwardUs = Us(k.BackwardSeconds, k.Method("backward", k.BackwardSpans, t.Description)),
                ForwardWorkRatio = forward.Whole, BackwardWorkRatio = backward.Whole,
                ForwardElementwiseRatio = forward.Elementwise, BackwardElementwiseRatio = backward.Elementwise,
            });
        }
        foreach (var k in t.KindFloors ?? [])
        {
            if (!seen.Add(k.Kind)) continue;
            if (!(k.ForwardSeconds > 0) || !(k.AutogradSeconds > 0) || !(k.BackwardSeconds > 0))
                throw new ArgumentException($"The dispatch floors of {k.Family} ({k.Kind}) need positive timings.", nameof(t));
            var (forward, backward) = (WorkRatios(k, false, price, t, date), WorkRatios(k, true, price, t, date));
            string Method(string pass) => string.Create(CultureInfo.InvariantCulture,
                $"aios calibrate-gpu --floor-families: a {k.Family} layer {pass} at a tiny shape, median ({t.Description})");
            result.Add(new LayerKindFloors
            {
                Kind = k.Kind,
                ForwardUs = Us(k.ForwardSeconds, Method("forward without autograd")),
                AutogradUs = Us(k.AutogradSeconds, Method("forward with autograd")),
                BackwardUs = Us(k.BackwardSeconds, Method("backward")),
                ForwardWorkRatio = forward.Whole, BackwardWorkRatio = backward.Whole,
                ForwardElementwiseRatio = forward.Elementwise, BackwardElementwiseRatio = backward.Elementwise,
            });
        }
        // Their floors are absolute; work ratios were measured against the fit of their day, so they go with it.
        foreach (var k in previous?.KindFloors ?? [])
            if (seen.Add(k.Kind)) result.Add(k with { ForwardWorkRatio = null, BackwardWorkRatio = null, ForwardElementwiseRatio = null, BackwardElementwiseRatio = null });
        return result.Count > 0 ? result : null;
    }

    /// <summary>The profile with <paramref name="kernels"/> as its GPU's engine kernels; nothing else changes.</summary>
    /// <exception cref="ArgumentException">The profile has no GPU section.</exception>
    public static HardwareProfile Apply(HardwareProfile profile, EngineKernels kernels)
    {
        ArgumentNullException.ThrowIfNull(profile);
        if (profile.Gpu is null) throw new ArgumentException($"{profile.Name} has no gpu section to hold engine kernels.", nameof(profile));
        return profile with { Gpu = profile.Gpu with { EngineKernels = kernels } };
    }
}

using AiOs.Planner.Descriptions;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Hardware;

/// <summary>
/// How the bundled engine's own kernels (its decoder layer, outer block and loss, fused AdamW) turn work into time
/// on this GPU, for the <c>aios</c> executor: a unit's forward takes
/// <c>max(FLOPs / (matmul rate × <see cref="MatmulEfficiency"/>) + saved bytes / <see cref="SavedBytesGbps"/> + overhead, launch floor)</c>,
/// backward twice the matmuls and <see cref="BackwardWorkRatio"/> times the rest (or, without it, <see cref="BackwardRatio"/>
/// times the forward's work), recompute <see cref="RecomputeRatio"/> times the forward's work.
/// Fitted by <c>aios calibrate-gpu</c> from the engine's timed passes (Calibration/Compute/EngineKernelFit), or, in a
/// bundled profile, to measured engine steps (each figure's method says which; docs/simulator.md).
/// </summary>
public sealed record EngineKernels
{
    /// <summary>
    /// Fraction of the matmul rate the engine's units reach: of <see cref="LayerMatmul"/>'s rate at the layer's shape for the
    /// run's precision where the kernels carry it, else of the profile's large-matmul rate for that precision.
    /// </summary>
    public required Figure MatmulEfficiency { get; init; }
    /// <summary>
    /// The layer's weight products' measured rates per shape and precision, which <see cref="MatmulEfficiency"/> was fitted
    /// against (written by the same <c>aios calibrate-gpu</c>); null: the profile's large-matmul rate prices every shape.
    /// </summary>
    public LayerMatmulRates? LayerMatmul { get; init; }
    /// <summary>
    /// Where <see cref="LayerMatmul"/> is present: the efficiency the fitted layers reach against the profile's large-matmul
    /// rate instead (<see cref="MatmulEfficiency"/> × the passes' FLOP-weighted harmonic mean shape rate ÷ the large rate: their
    /// matmul time expressed against the large rate), which prices the head's and embedding's products, whose vocabulary-wide
    /// shape the table does not cover. Null: <see cref="MatmulEfficiency"/>.
    /// </summary>
    public Figure? LargeMatmulEfficiency { get; init; }
    /// <summary>Saved-for-backward bytes (LayerWork's count) the element-wise kernels get through per second, GB/s; 0: no separate term.</summary>
    public required Figure SavedBytesGbps { get; init; }
    /// <summary>Device time added to every unit forward, µs (small kernels that do not scale with the work).</summary>
    public Figure LayerOverheadUs { get; init; } = 0;
    /// <summary>A backward's time over its forward's (where <see cref="BackwardWorkRatio"/> is absent).</summary>
    public Figure BackwardRatio { get; init; } = 2;
    /// <summary>
    /// A backward's element-wise work and overhead over its forward's, its matmuls taking exactly twice the forward's (the
    /// input's and the weights' gradients): backward = 2 × matmul + this × (saved-bytes time + overhead). One ratio of the
    /// whole forward fits the precision it was fitted in only: fitted on bf16 passes (1.69 on the H100 VM), where element-wise
    /// work is half a layer's forward, it priced fp32 backward, almost all matmul, 19% short. Null: <see cref="BackwardRatio"/>.
    /// </summary>
    public Figure? BackwardWorkRatio { get; init; }
    /// <summary>A recompute's time over its forward's (with autograd recording, slightly above 1).</summary>
    public Figure RecomputeRatio { get; init; } = 1;
    /// <summary>
    /// The shortest a unit forward can take, µs: the host's time to dispatch its kernels. A small micro-batch is
    /// launch-bound (the GPU waits for the host), so the time stops falling with the work; backward's floor is twice this.
    /// </summary>
    public Figure LayerLaunchFloorUs { get; init; } = 0;
    /// <summary>
    /// The dispatch floor of a unit forward that records autograd (a resident forward without checkpointing, and every
    /// recompute), µs: recording the graph costs the host more than the kernels' launches alone. Null: <see cref="LayerLaunchFloorUs"/>.
    /// </summary>
    public Figure? AutogradLaunchFloorUs { get; init; }
    /// <summary>The dispatch floor of a unit backward, µs. Null: twice the autograd floor.</summary>
    public Figure? BackwardLaunchFloorUs { get; init; }
    /// <summary>
    /// The layer-by-layer (offloaded) trainer's floors over the resident trainer's, per pass, measured in both trainers'
    /// steps (<c>aios calibrate-gpu</c>); null: the resident trainer's floors price both (profiles fitted before them).
    /// </summary>
    public LayerwiseFloorRatios? LayerwiseFloorRatios { get; init; }
    /// <summary>
    /// The layer-by-layer trainer's floors while the CPU updates beside its passes (the delayed and overlapped schedules: CPU
    /// Adam takes all cores but one) over its floors in steps without that, per pass, measured in its own steps by
    /// <c>aios calibrate-gpu</c>; null: the passes are priced as if alone. Launch-bound steps took 1.5–3× longer per layer
    /// beside the update on the H100 VMs (2026-12-06); work-bound ones did not move.
    /// </summary>
    public LayerwiseFloorRatios? BesideUpdateFloorRatios { get; init; }
    /// <summary>
    /// The layer kind (<see cref="EngineLayerKind"/>) the three floors above were measured on: they hold for models of that
    /// kind. Null: <see cref="EngineLayerKind.Gpt2"/>, what profiles written before per-kind floors were measured on.
    /// </summary>
    public string? FloorKind { get; init; }
    /// <summary>
    /// The dispatch floors of other layer kinds (an RMSNorm, rotary, SwiGLU layer launches more kernels than GPT-2's), one
    /// entry per kind; null or empty: only <see cref="FloorKind"/>'s were measured.
    /// </summary>
    public IReadOnlyList<LayerKindFloors>? KindFloors { get; init; }
    /// <summary>
    /// The host's time for a layer pass replayed from its CUDA graph (<c>--cuda-graphs</c>), µs: the replay's launch plus the
    /// engine's own per-operation work around it (the dropout seed, the span's events, a memory sample). Null:
    /// <see cref="DefaultGraphReplayFloorUs"/>.
    /// </summary>
    public Figure? GraphReplayFloorUs { get; init; }

    /// <summary>
    /// A replayed layer's work per shape (<c>--cuda-graphs</c>): its forward's and backward's time beyond their products, ms per GB
    /// of the forward's saved bytes, measured on graph replays of the engine's layer by <c>aios calibrate-gpu</c>. Null: replayed
    /// layers are priced as eager ones.
    /// </summary>
    public GraphWork? GraphWork { get; init; }

    /// <summary>
    /// The replay floor where a profile has none, µs: a gpt2-xl layer's captured forward replayed for 4.5 µs of host time on an
    /// H100 VM (<c>aios bench-dispatch --graph</c>, 2026-12-07), and the engine's work around each operation costs about as much
    /// again twice over (two span events at 1.6 µs, a memory sample at 7 µs).
    /// </summary>
    public const double DefaultGraphReplayFloorUs = 15;

    /// <summary>The host's floor of a layer pass replayed from its CUDA graph.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public SimDuration GraphReplayFloor => SimDuration.FromMicroseconds(GraphReplayFloorUs?.Value ?? DefaultGraphReplayFloorUs);

    /// <summary>Fixed time per step, µs: loss synchronisation, optimizer launches, bookkeeping.</summary>
    public Figure StepOverheadUs { get; init; } = 0;
    /// <summary>Bytes per second the device optimizer (fused AdamW) touches, GB/s; null: the device bandwidth at the compute model's efficiency.</summary>
    public Figure? OptimizerGbps { get; init; }

    /// <summary>The fixed per-forward device time.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public SimDuration LayerOverhead => SimDuration.FromMicroseconds(LayerOverheadUs.Value);

    /// <summary>The host dispatch floor of one forward.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public SimDuration LayerLaunchFloor => SimDuration.FromMicroseconds(LayerLaunchFloorUs.Value);

    /// <summary>The host dispatch floor of a forward that records autograd, and of a recompute.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public SimDuration AutogradLaunchFloor => SimDuration.FromMicroseconds((AutogradLaunchFloorUs ?? LayerLaunchFloorUs).Value);

    /// <summary>The host dispatch floor of a backward.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public SimDuration BackwardLaunchFloor => BackwardLaunchFloorUs is { } b ? SimDuration.FromMicroseconds(b.Value) : AutogradLaunchFloor * 2;

    /// <summary>The layer kind the main floors were measured on (<see cref="FloorKind"/>, GPT-2's when unset).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string MainFloorKind => FloorKind ?? EngineLayerKind.Gpt2;

    /// <summary>
    /// The dispatch floors of <paramref name="model"/>'s layers: the main floors when its kind is <see cref="MainFloorKind"/>
    /// (or no model is given), its <see cref="KindFloors"/> entry when there is one, else the main floors marked as not
    /// measured for its kind (<see cref="EngineFloors.Measured"/> false).
    /// </summary>
    public EngineFloors FloorsFor(ModelSpec? model) => model is null ? Main(true) : FloorsOf(EngineLayerKind.Of(model));

    /// <summary>The dispatch floors of layer kind <paramref name="kind"/> (see <see cref="FloorsFor"/>).</summary>
    public EngineFloors FloorsOf(string kind)
    {
        ArgumentNullException.ThrowIfNull(kind);
        if (kind == MainFloorKind) return Main(true);
        if (KindFloors?.FirstOrDefault(f => f.Kind == kind) is { } k)
        {
            return new EngineFloors(kind, SimDuration.FromMicroseconds(k.ForwardUs.Value), SimDuration.FromMicroseconds(k.AutogradUs.Value),
                SimDuration.FromMicroseconds(k.BackwardUs.Value), true);
        }
        return Main(false) with { Kind = kind };
    }

    /// <summary>
    /// How much slower than the main kind's work fit prices them <paramref name="model"/>'s work-bound layer passes run
    /// (forward and recompute, backward): its <see cref="KindFloors"/> entry's measured ratios; 1 for the main kind, or where
    /// none was measured.
    /// </summary>
    public KindWork WorkRatiosFor(ModelSpec model)
    {
        string kind = EngineLayerKind.Of(model);
        if (kind == MainFloorKind || KindFloors?.FirstOrDefault(f => f.Kind == kind) is not { } k) return KindWork.Same;
        return new KindWork(k.ForwardWorkRatio?.Value ?? 1, k.BackwardWorkRatio?.Value ?? 1, k.ForwardElementwiseRatio?.Value, k.BackwardElementwiseRatio?.Value);
    }

    private EngineFloors Main(bool measured) => new(MainFloorKind, LayerLaunchFloor, AutogradLaunchFloor, BackwardLaunchFloor, measured);

    /// <summary>
    /// The rate, efficiency included, at which a unit's products are priced in <paramref name="precision"/>: a decoder layer's
    /// (<paramref name="layer"/>) of width <paramref name="hidden"/> over <paramref name="tokens"/> tokens at <see cref="LayerMatmul"/>'s
    /// rate for that shape × <see cref="MatmulEfficiency"/>; the head's and embedding's, and every unit's where the kernels carry no
    /// table, at <paramref name="largeMatmul"/> (the profile's large-matmul rate) × the efficiency fitted against it.
    /// </summary>
    public FlopRate MatmulRateFor(Precision precision, bool layer, int hidden, long tokens, FlopRate largeMatmul)
    {
        if (LayerMatmul is null) return largeMatmul * MatmulEfficiency.Value;
        if (layer && LayerMatmul.RateAt(precision, hidden, tokens) is { } shape) return shape * MatmulEfficiency.Value;
        return largeMatmul * (LargeMatmulEfficiency ?? MatmulEfficiency).Value;
    }

    /// <summary>The fixed per-step time.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public SimDuration StepOverhead => SimDuration.FromMicroseconds(StepOverheadUs.Value);

    /// <summary>Time of the element-wise work of a unit that saves <paramref name="saved"/> bytes.</summary>
    public SimDuration ElementwiseTime(Bytes saved) =>
        SavedBytesGbps.Value > 0 ? saved / Bandwidth.FromGBps(SavedBytesGbps.Value) : SimDuration.Zero;

    internal void Validate(ValidationProblems p, string at)
    {
        p.InRange(at + ".matmul_efficiency", MatmulEfficiency.Value, 1e-4, 10);
        LayerMatmul?.Validate(p, at + ".layer_matmul");
        GraphWork?.Validate(p, at + ".graph_work");
        if (LargeMatmulEfficiency is { } large) p.InRange(at + ".large_matmul_efficiency", large.Value, 1e-4, 10);
        if (SavedBytesGbps.Value != 0) p.InRange(at + ".saved_bytes_gbps", SavedBytesGbps.Value, HardwareBounds.MinLinkGbps, HardwareBounds.MaxMemoryGbps, " GB/s (or 0)");
        p.NonNegative(at + ".layer_overhead_us", LayerOverheadUs.Value, HardwareBounds.MaxLatencyUs, " µs");
        p.InRange(at + ".backward_ratio", BackwardRatio.Value, 0.01, 100);
        if (BackwardWorkRatio is { } w) p.InRange(at + ".backward_work_ratio", w.Value, 0, 100);
        p.InRange(at + ".recompute_ratio", RecomputeRatio.Value, 0.01, 100);
        p.NonNegative(at + ".layer_launch_floor_us", LayerLaunchFloorUs.Value, HardwareBounds.MaxLatencyUs, " µs");
        if (AutogradLaunchFloorUs is { } a) p.NonNegative(at + ".autograd_launch_floor_us", a.Value, HardwareBounds.MaxLatencyUs, " µs");
        if (BackwardLaunchFloorUs is { } b) p.NonNegative(at + ".backward_launch_floor_us", b.Value, HardwareBounds.MaxLatencyUs, " µs");
        if (LayerwiseFloorRatios is { } lw)
        {
            p.InRange(at + ".layerwise_floor_ratios.forward", lw.Forward.Value, 0.1, 10);
            p.InRange(at + ".layerwise_floor_ratios.recompute", lw.Recompute.Value, 0.1, 10);
            p.InRange(at + ".layerwise_floor_ratios.backward", lw.Backward.Value, 0.1, 10);
        }
        if (BesideUpdateFloorRatios is { } bu)
        {
            p.InRange(at + ".beside_update_floor_ratios.forward", bu.Forward.Value, 0.1, 10);
            p.InRange(at + ".beside_update_floor_ratios.recompute", bu.Recompute.Value, 0.1, 10);
            p.InRange(at + ".beside_update_floor_ratios.backward", bu.Backward.Value, 0.1, 10);
        }
        if (FloorKind is { } kind && string.IsNullOrWhiteSpace(kind)) p.Add(at + ".floor_kind", "must not be empty; remove it for GPT-2's kind");
        if (KindFloors is { } kinds)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal) { MainFloorKind };
            for (int i = 0; i < kinds.Count; i++)
            {
                string k = $"{at}.kind_floors[{i}]";
                if (kinds[i] is not { } f) { p.Add(k, "must not be null"); continue; }
                if (string.IsNullOrWhiteSpace(f.Kind)) p.Add(k + ".kind", "must name a layer kind");
                else if (!seen.Add(f.Kind)) p.Add(k + ".kind", $"{f.Kind} appears twice (or is floor_kind, whose floors are the main ones); keep one entry per kind");
                p.NonNegative(k + ".forward_us", f.ForwardUs.Value, HardwareBounds.MaxLatencyUs, " µs");
                p.NonNegative(k + ".autograd_us", f.AutogradUs.Value, HardwareBounds.MaxLatencyUs, " µs");
                p.NonNegative(k + ".backward_us", f.BackwardUs.Value, HardwareBounds.MaxLatencyUs, " µs");
                if (f.ForwardWorkRatio is { } fw) p.InRange(k + ".forward_work_ratio", fw.Value, 0.1, 10);
                if (f.BackwardWorkRatio is { } bw) p.InRange(k + ".backward_work_ratio", bw.Value, 0.1, 10);
                if (f.ForwardElementwiseRatio is { } fr) p.InRange(k + ".forward_elementwise_ratio", fr.Value, 0.1, 10);
                if (f.BackwardElementwiseRatio is { } br) p.InRange(k + ".backward_elementwise_ratio", br.Value, 0.1, 10);
            }
        }
        p.NonNegative(at + ".step_overhead_us", StepOverheadUs.Value, HardwareBounds.MaxLatencyUs, " µs");
        if (OptimizerGbps is { } o) p.InRange(at + ".optimizer_gbps", o.Value, HardwareBounds.MinLinkGbps, HardwareBounds.MaxMemoryGbps, " GB/s");
    }
}

/// <summary>The dispatch floors of one engine layer kind other than <see cref="EngineKernels.FloorKind"/> (<c>aios calibrate-gpu --floor-families</c>).</summary>
public sealed record LayerKindFloors
{
    /// <summary>The layer kind (<see cref="EngineLayerKind.Of"/>).</summary>
    public required string Kind { get; init; }
    /// <summary>A layer forward without autograd, µs (as <see cref="EngineKernels.LayerLaunchFloorUs"/>).</summary>
    public required Figure ForwardUs { get; init; }
    /// <summary>A layer forward recording autograd, and a recompute, µs (as <see cref="EngineKernels.AutogradLaunchFloorUs"/>).</summary>
    public required Figure AutogradUs { get; init; }
    /// <summary>A layer backward, µs (as <see cref="EngineKernels.BackwardLaunchFloorUs"/>).</summary>
    public required Figure BackwardUs { get; init; }
    /// <summary>
    /// A work-bound layer forward (and recompute) of this kind over what the main kind's work fit prices it at: its norms,
    /// position encoding and MLP do other element-wise work than the main kind's. Null: not measured (priced as the main kind's).
    /// </summary>
    public Figure? ForwardWorkRatio { get; init; }
    /// <summary>A work-bound layer backward of this kind over the main kind's fit's price (see <see cref="ForwardWorkRatio"/>).</summary>
    public Figure? BackwardWorkRatio { get; init; }
    /// <summary>
    /// The same difference put on a forward's (and recompute's) element-wise work alone — the fit's saved-bytes term — its
    /// matmuls and fixed overhead at the main fit's price: forward = matmuls + this × element-wise + overhead. Measured in the
    /// fit's precision (bf16), where element-wise work is about half a layer's time; one ratio of the whole would scale another
    /// precision's matmuls too (an fp32 Llama layer, almost all matmul, came out 23–33% slow with the whole ratio on an H100 VM,
    /// 2026-12-07). Where present it is used instead of <see cref="ForwardWorkRatio"/>; null: not measured (profiles before
    /// 2026-12-07).
    /// </summary>
    public Figure? ForwardElementwiseRatio { get; init; }
    /// <summary>The backward's (see <see cref="ForwardElementwiseRatio"/>): backward = 2 × matmuls + work ratio × (this × element-wise + overhead).</summary>
    public Figure? BackwardElementwiseRatio { get; init; }
}

/// <summary>
/// How a layer kind's work differs from the main kind's fit (<see cref="EngineKernels.WorkRatiosFor"/>): whole ratios of the fit's
/// price, and where measured, ratios of its element-wise work alone (<see cref="LayerKindFloors.ForwardElementwiseRatio"/>), which win.
/// </summary>
public readonly record struct KindWork(double Forward, double Backward, double? ForwardElementwise = null, double? BackwardElementwise = null)
{
    /// <summary>The main kind's: nothing differs.</summary>
    public static KindWork Same => new(1, 1);
}

/// <summary>The dispatch floors a model's layers are priced with (<see cref="EngineKernels.FloorsFor"/>).</summary>
/// <param name="Kind">The model's layer kind (the main kind when no model was given).</param>
/// <param name="Forward">A forward without autograd.</param>
/// <param name="Autograd">A forward recording autograd, and a recompute.</param>
/// <param name="Backward">A backward.</param>
/// <param name="Measured">Whether they were measured for the model's layer kind; false: the main kind's floors stand in.</param>
public readonly record struct EngineFloors(string Kind, SimDuration Forward, SimDuration Autograd, SimDuration Backward, bool Measured);

/// <summary>
/// The layer-by-layer trainer's dispatch floors as multiples of the resident trainer's (<see cref="EngineKernels.LayerwiseFloorRatios"/>):
/// its per-pass host work (slots, stream waits, the program executor's hand-offs) differs from the resident trainer's.
/// </summary>
public sealed record LayerwiseFloorRatios
{
    /// <summary>A layer forward without autograd, over the no-grad floor.</summary>
    public required Figure Forward { get; init; }
    /// <summary>A layer recompute, over the autograd floor.</summary>
    public required Figure Recompute { get; init; }
    /// <summary>A layer backward, over the backward floor.</summary>
    public required Figure Backward { get; init; }
}

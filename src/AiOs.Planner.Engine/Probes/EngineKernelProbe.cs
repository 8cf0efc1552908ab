using System.Diagnostics;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Engine.Optim;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using TorchSharp;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Probes;

/// <summary>What the engine-kernel probe times, where, and how often.</summary>
public sealed record EngineKernelProbeOptions
{
    /// <summary>The model whose layer kind (norm, FFN, dropout, vocabulary) is timed; its hidden size is varied.</summary>
    public required ModelSpec Family { get; init; }
    /// <summary>
    /// Further models whose layer kinds' dispatch floors alone are timed (as <see cref="Family"/>'s, over the same hidden
    /// sizes): one entry per distinct kind (<see cref="EngineLayerKind"/>) other than <see cref="Family"/>'s.
    /// </summary>
    public IReadOnlyList<ModelSpec> FloorFamilies { get; init; } = [];
    /// <summary>The device the engine trains on: <c>cuda</c>, <c>cuda:N</c> or <c>cpu</c>.</summary>
    public string Device { get; init; } = "cuda";
    /// <summary>The training precision the kernels run in (the engine holds the whole model in it).</summary>
    public Precision Precision { get; init; } = Precision.Bf16;
    /// <summary>Hidden sizes of the timed decoder layers (64-wide heads, FFN four times wider).</summary>
    public IReadOnlyList<int> HiddenSizes { get; init; } = [768, 1280, 2048];
    /// <summary>(micro-batch, sequence) shapes of the timed layers: enough work that the device, not the host, sets the time.</summary>
    public IReadOnlyList<(int MicroBatch, int SeqLen)> Shapes { get; init; } = [(2, 1024), (4, 1024), (8, 1024), (16, 1024)];
    /// <summary>A shape so small that a layer's time is its host dispatch: the launch floor.</summary>
    public (int MicroBatch, int SeqLen) FloorShape { get; init; } = (1, 8);
    /// <summary>
    /// Passes timed back to back, with one wait for the device at the end, for each floor: a step launches unit after unit
    /// without waiting, and one pass between two waits also times the wait and the first launches after it (about twice
    /// the steady floor of a forward with autograd on the H100 VM: 662 against 330 µs inside gpt2-xl's micro-batch 1 steps).
    /// </summary>
    public int FloorChain { get; init; } = 8;
    /// <summary>
    /// (micro-batch, sequence) shapes at which the layer's forward (recording autograd) and backward are also timed replayed
    /// from CUDA graphs, as <c>--cuda-graphs</c> runs them (on CUDA only; empty: none): a replay has no host time around its
    /// kernels, so launch-bound shapes time their device work too. Every hidden size × these shapes makes a full grid.
    /// </summary>
    public IReadOnlyList<(int MicroBatch, int SeqLen)> GraphShapes { get; init; } = [(1, 1024), (2, 1024), (4, 1024), (8, 1024), (16, 1024)];
    /// <summary>(micro-batch, sequence) shapes at which the family's own head and loss are timed.</summary>
    public IReadOnlyList<(int MicroBatch, int SeqLen)> HeadShapes { get; init; } = [(2, 1024), (8, 1024)];
    /// <summary>Elements the device AdamW updates in one timed call.</summary>
    public long OptimizerElements { get; init; } = 64_000_000;
    /// <summary>
    /// Hidden sizes at which a layer's four weight products are timed alone in both bf16 and fp32 (<see cref="LayerMatmulRates"/>);
    /// null: <see cref="HiddenSizes"/> and twice and four times the widest of them (768–8192 by default); empty: none timed.
    /// </summary>
    public IReadOnlyList<int>? MatmulHiddenSizes { get; init; }
    /// <summary>Token counts of those products; null: <see cref="Shapes"/>' and half the smallest of them (1,024–16,384 by default).</summary>
    public IReadOnlyList<long>? MatmulTokens { get; init; }
    /// <summary>Timed repeats of each sample after one untimed warm-up; the median is kept.</summary>
    public int Repeats { get; init; } = 5;

    /// <summary>The hidden sizes the products are timed at (<see cref="MatmulHiddenSizes"/>, or its default).</summary>
    public IReadOnlyList<int> MatmulHiddenGrid() => MatmulHiddenSizes ?? (HiddenSizes.Count == 0 ? []
        : HiddenSizes.Concat([2 * HiddenSizes.Max(), 4 * HiddenSizes.Max()]).Distinct().Order().ToList());

    /// <summary>The token counts the products are timed at (<see cref="MatmulTokens"/>, or its default).</summary>
    public IReadOnlyList<long> MatmulTokenGrid()
    {
        if (MatmulTokens is { } given) return given;
        var tokens = Shapes.Select(x => (long)x.MicroBatch * x.SeqLen).ToList();
        return tokens.Count == 0 ? [] : tokens.Append(Math.Max(1, tokens.Min() / 2)).Distinct().Order().ToList();
    }
    public long Seed { get; init; } = 1234;
}

/// <summary>What the engine-kernel probe measured on one device.</summary>
/// <param name="Device">Where it ran.</param>
/// <param name="Precision">The precision the kernels ran in.</param>
/// <param name="Layers">Timed forward, recompute and backward passes of layers and the head (work as <see cref="LayerWork"/> counts it).</param>
/// <param name="FloorSeconds">Median time of a layer forward (with autograd) at <see cref="EngineKernelProbeOptions.FloorShape"/>: the dispatch floor (the smallest over the hidden sizes, as are the two below).</param>
/// <param name="OptimizerSeconds">Median time of the device AdamW over <paramref name="OptimizerElements"/> elements.</param>
/// <param name="OptimizerElements">Elements of that update.</param>
/// <param name="OptimizerName">The AdamW implementation timed (<c>fused-cuda</c>, <c>torch-ops</c>).</param>
/// <param name="NoGradFloorSeconds">The same for a forward without autograd (the layerwise engine's forward).</param>
/// <param name="BackwardFloorSeconds">The same for a backward.</param>
/// <param name="Kind">The layer kind of the timed family (<see cref="EngineLayerKind.Of"/>).</param>
/// <param name="KindFloors">The floors of <see cref="EngineKernelProbeOptions.FloorFamilies"/>' other kinds, one per kind; null: none timed.</param>
/// <param name="LayerMatmul">The layer's weight products timed alone per shape, bf16 and fp32 (<see cref="LayerMatmulPoint"/>); empty: none timed.</param>
/// <param name="Replayed">The layer's forward and backward replayed from CUDA graphs at <see cref="EngineKernelProbeOptions.GraphShapes"/>, every hidden size; null or empty: none timed (a CPU device, or a capture that failed).</param>
public sealed record EngineKernelMeasurement(string Device, Precision Precision, IReadOnlyList<LayerSample> Layers,
    double FloorSeconds, double OptimizerSeconds, long OptimizerElements, string OptimizerName, double NoGradFloorSeconds = double.NaN,
    double BackwardFloorSeconds = double.NaN, string? Kind = null, IReadOnlyList<KindFloorSample>? KindFloors = null,
    IReadOnlyList<LayerMatmulPoint>? LayerMatmul = null, IReadOnlyList<LayerSample>? Replayed = null);

/// <summary>The dispatch floors of one layer kind, each the smallest median over the probe's hidden sizes.</summary>
/// <param name="Kind">The layer kind (<see cref="EngineLayerKind.Of"/>).</param>
/// <param name="Family">The model it was timed on.</param>
/// <param name="ForwardSeconds">A layer forward without autograd.</param>
/// <param name="AutogradSeconds">A layer forward recording autograd.</param>
/// <param name="BackwardSeconds">A layer backward.</param>
public sealed record KindFloorSample(string Kind, string Family, double ForwardSeconds, double AutogradSeconds, double BackwardSeconds)
{
    /// <summary>Work-bound passes of the kind's layer (forward, recompute, backward) at the largest hidden size and shape, for its work ratio to the main fit; empty: none timed.</summary>
    public IReadOnlyList<LayerSample> Work { get; init; } = [];
}

/// <summary>
/// Times the engine's own kernels where it trains (<c>aios calibrate-gpu</c>; on the CPU too, for tests): its
/// <see cref="DecoderLayer"/> forward (no autograd, as the layerwise engine's forward), recompute (autograd from a
/// detached input) and backward, its <see cref="OuterBlock"/> head and loss, and its device AdamW, in the training
/// precision. On CUDA every timed region starts and ends synchronised, so a time is device time plus dispatch.
/// </summary>
public static class EngineKernelProbe
{
    /// <summary>Runs the probe; <paramref name="progress"/> receives one line per sample.</summary>
    public static EngineKernelMeasurement Measure(EngineKernelProbeOptions options, Action<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var device = new Device(options.Device);
        TorchRuntime.EnsureReady(TorchRuntime.DeviceTypeOf(options.Device));
        manual_seed(options.Seed);
        bool cuda = device.type == DeviceType.CUDA;
        ScalarType dtype = EngineSettings.DType(options.Precision);
        void Sync() { if (cuda) torch.cuda.synchronize(); }
        double Time(Action once) { Sync(); long t0 = Stopwatch.GetTimestamp(); once(); Sync(); return Stopwatch.GetElapsedTime(t0).TotalSeconds; }

        var samples = new List<LayerSample>();
        double floor = double.NaN, noGradFloor = double.NaN, backwardFloor = double.NaN;
        foreach (int h in options.HiddenSizes)
        {
            var spec = CpuComputeProbe.Widened(options.Family, h);
            using var parameters = LayerParameters(spec, dtype, device);
            var layer = TrainingLayer(spec, parameters);
            foreach (var (mb, seq) in options.Shapes)
            {
                var passes = WorkPasses(layer, parameters, spec, mb, seq, options, device, dtype, Time);
                samples.AddRange(passes);
                progress?.Invoke($"layer h={h} {mb}×{seq}: forward {passes[0].Seconds * 1e3:0.00} ms, recompute {passes[1].Seconds * 1e3:0.00} ms, backward {passes[2].Seconds * 1e3:0.00} ms");
            }
            var floors = Floors(layer, parameters, h, options, device, dtype, Time);
            floor = MinOf(floor, floors.Recompute);
            noGradFloor = MinOf(noGradFloor, floors.Forward);
            backwardFloor = MinOf(backwardFloor, floors.Backward);
            progress?.Invoke($"layer h={h} {options.FloorShape.MicroBatch}×{options.FloorShape.SeqLen} (dispatch floors, {options.FloorChain} passes back to back): forward {floors.Forward * 1e6:0} µs, with autograd {floors.Recompute * 1e6:0} µs, backward {floors.Backward * 1e6:0} µs");
        }
        string kind = EngineLayerKind.Of(options.Family);
        progress?.Invoke($"floors of {options.Family.Name} ({kind}): forward {noGradFloor * 1e6:0} µs, with autograd {floor * 1e6:0} µs, backward {backwardFloor * 1e6:0} µs");
        var kindFloors = KindFloors(options, kind, device, dtype, Time, progress);
        samples.AddRange(TimeHead(options, device, dtype, Time, progress));
        var (optimizerSeconds, optimizerName) = TimeOptimizer(options, device, dtype, Time);
        progress?.Invoke($"AdamW ({optimizerName}) over {options.OptimizerElements:N0} elements: {optimizerSeconds * 1e3:0.00} ms");
        List<LayerMatmulPoint> matmuls;
        try
        {
            matmuls = LayerMatmuls(options, device, Time, progress);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Optional: without the table the fit takes every pass against the large-matmul rate, as before it existed.
            progress?.Invoke($"warning: the layer products' rates per shape were not measured ({e.GetType().Name}: {e.Message}); the fit uses the large-matmul rate");
            matmuls = [];
        }
        // Last, on CUDA: a capture is the one step here that, should libtorch throw inside it, could end the process, so every
        // other measurement is taken first (and the command's output says which capture was running). A caller with more to
        // measure on the device gives no graph shapes here and calls MeasureReplays after it.
        var replayed = MeasureReplays(options, progress);
        return new EngineKernelMeasurement(options.Device, options.Precision, samples, floor, optimizerSeconds, options.OptimizerElements, optimizerName,
            noGradFloor, backwardFloor, kind, kindFloors, matmuls, replayed);
    }

    /// <summary>
    /// The layer's passes replayed from CUDA graphs (<see cref="EngineKernelMeasurement.Replayed"/>; <see cref="Measure"/> takes
    /// them last), at every hidden size × <see cref="EngineKernelProbeOptions.GraphShapes"/>: null on a device other than CUDA,
    /// with no graph shapes, or, with a warning in <paramref name="progress"/>, when a capture fails (the fit needs the full grid).
    /// </summary>
    public static IReadOnlyList<LayerSample>? MeasureReplays(EngineKernelProbeOptions options, Action<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var device = new Device(options.Device);
        if (device.type != DeviceType.CUDA || options.GraphShapes.Count == 0) return null;
        TorchRuntime.EnsureReady(DeviceType.CUDA);
        manual_seed(options.Seed);
        ScalarType dtype = EngineSettings.DType(options.Precision);
        static double Time(Action once) { torch.cuda.synchronize(); long t0 = Stopwatch.GetTimestamp(); once(); torch.cuda.synchronize(); return Stopwatch.GetElapsedTime(t0).TotalSeconds; }
        // The fit needs the full grid: one capture that fails drops them all.
        var replayed = new List<LayerSample>();
        foreach (int h in options.HiddenSizes)
        {
            var spec = CpuComputeProbe.Widened(options.Family, h);
            using var parameters = LayerParameters(spec, dtype, device);
            var layer = TrainingLayer(spec, parameters);
            foreach (var (mb, seq) in options.GraphShapes)
            {
                progress?.Invoke($"layer h={h} {mb}×{seq}: capturing its forward and backward as CUDA graphs");
                try
                {
                    var (forward, backward) = Replayed(layer, parameters, spec, mb, seq, options, device, dtype, Time);
                    replayed.AddRange([forward, backward]);
                    progress?.Invoke($"layer h={h} {mb}×{seq} replayed from CUDA graphs: forward {forward.Seconds * 1e3:0.000} ms, backward {backward.Seconds * 1e3:0.000} ms");
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    progress?.Invoke($"warning: the layer's passes replayed from CUDA graphs were not measured ({e.GetType().Name}: {e.Message}); replayed layers keep the eager pricing");
                    return null;
                }
            }
        }
        return replayed;
    }

    /// <summary>
    /// The layer's forward (recording autograd, as the resident trainer's) and backward (autograd's call, as
    /// <see cref="FlatParameters.Backward"/> makes it; the packing of its gradients is left out, as the eager passes leave it out:
    /// the step program prices that landing apart) at <paramref name="mb"/> × <paramref name="seq"/>, each captured as a CUDA graph
    /// as <c>LayerGraphs</c> captures them and replayed back to back in chains holding about 2 ms of work: the forward the median
    /// of its chains, the backward the median over repeats of a chain of forward-and-backward pairs less the forward chain timed
    /// beside it.
    /// </summary>
    private static (LayerSample Forward, LayerSample Backward) Replayed(DecoderLayer layer, FlatParameters parameters, ModelSpec spec, int mb, int seq,
        EngineKernelProbeOptions options, Device device, ScalarType dtype, Func<Action, double> time)
    {
        int h = spec.HiddenSize;
        var settings = Settings(mb, seq, options.Precision);
        double flops = LayerWork.ForwardFlops(spec, settings, 0), saved = LayerWork.ForwardSavedBytes(spec, settings, 0);
        var replay = new DropoutReplay(options.Seed, 1, 0);
        int index = Math.Max(0, (int)device.index);
        Tensor? input = null, given = null, output = null, inputGradient = null;
        CudaGraphCapture? forwardGraph = null, backwardGraph = null;
        try
        {
            Collectives.CudaDevice.MakeCurrent(index);
            using var side = CudaGraphCapture.SideStreamScope.Enter(index);
            LayerGraphs.WarmCaptureStream(layer, parameters, seq, h, dtype, device);
            input = randn([mb, seq, h], dtype, device).requires_grad_(true).DetachFromDisposeScope();
            given = randn([mb, seq, h], dtype, device).DetachFromDisposeScope();
            replay.Before(0, device);
            forwardGraph = new CudaGraphCapture();
            forwardGraph.Capture(() => output = layer.forward(input).DetachFromDisposeScope(), default);
            backwardGraph = new CudaGraphCapture();
            backwardGraph.Capture(() =>
            {
                using var inner = NewDisposeScope();
                inputGradient = parameters.Backward(output!, input, given).DetachFromDisposeScope();
            }, forwardGraph.Pool);
            void Forward() { replay.Before(0, device); forwardGraph.Replay(); }
            void Pair() { Forward(); backwardGraph.Replay(); }
            Pair(); // the first replays upload the graphs
            int chain = (int)Math.Clamp(Math.Ceiling(2e-3 / Math.Max(time(Pair), 1e-9)), 1, 64);
            var runs = new List<(double Forward, double Backward)>();
            for (int r = 0; r < Math.Max(1, options.Repeats); r++)
            {
                double forward = time(() => { for (int i = 0; i < chain; i++) Forward(); }) / chain;
                double pair = time(() => { for (int i = 0; i < chain; i++) Pair(); }) / chain;
                runs.Add((forward, pair - forward));
            }
            double backward = MedianOf(runs.Select(x => x.Backward));
            if (!(backward > 0))
                throw new InvalidOperationException($"the replayed backward timed {backward * 1e6:0.0} µs (pairs less forwards): the timings were disturbed");
            return (new LayerSample("layer", "forward", h, mb, seq, flops, saved, MedianOf(runs.Select(x => x.Forward))),
                new LayerSample("layer", "backward", h, mb, seq, flops, saved, backward));
        }
        finally
        {
            // Nothing queued may still use the graphs' memory when they and their pool go.
            try { cuda.synchronize(); } catch (Exception) { /* the capture's own failure is the one to report */ }
            foreach (var t in new[] { input, given, output, inputGradient }) t?.Dispose();
            parameters.ClearGradients();
            backwardGraph?.Dispose();
            forwardGraph?.Dispose();
        }
    }

    /// <summary>
    /// A decoder layer's four weight products, (T × h)·(h × 3h), (T × h)·(h × h), (T × h)·(h × 4h) and (T × 4h)·(4h × h), timed
    /// alone in bf16 and fp32 at every (hidden, tokens) of the options' grid: their FLOPs over the median time of the four, run
    /// back to back enough times that each timed region holds about 2 ms of work (so the waits around it do not count), after
    /// an untimed call that loads the shape's kernels. Peaks near 8 GiB of device memory at fp32, h = 8192, 16,384 tokens.
    /// </summary>
    private static List<LayerMatmulPoint> LayerMatmuls(EngineKernelProbeOptions options, Device device, Func<Action, double> time, Action<string>? progress)
    {
        var points = new List<LayerMatmulPoint>();
        foreach (int h in options.MatmulHiddenGrid())
        foreach (long tokens in options.MatmulTokenGrid())
        {
            double Rate(ScalarType type)
            {
                using var scope = NewDisposeScope();
                var x = randn([tokens, h], type, device);
                var wide = randn([tokens, 4L * h], type, device);
                Tensor[] weights = [randn([h, 3L * h], type, device), randn([h, (long)h], type, device), randn([h, 4L * h], type, device), randn([4L * h, h], type, device)];
                double flops = 2.0 * tokens * h * h * (3 + 1 + 4 + 4);
                void Once()
                {
                    for (int i = 0; i < 3; i++) matmul(x, weights[i]).Dispose();
                    matmul(wide, weights[3]).Dispose();
                }
                Once(); // the shape's first call picks and loads its kernels
                double first = time(Once);
                int chain = (int)Math.Clamp(Math.Ceiling(2e-3 / Math.Max(first, 1e-9)), 1, 64);
                double seconds = Median(options.Repeats, () => time(() => { for (int i = 0; i < chain; i++) Once(); })) / chain;
                return flops / seconds / 1e12;
            }
            static double Figure(double tflops) => double.Parse(tflops.ToString("G5", System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture);
            var point = new LayerMatmulPoint { Hidden = h, Tokens = tokens, Bf16Tflops = Figure(Rate(ScalarType.BFloat16)), Fp32Tflops = Figure(Rate(ScalarType.Float32)) };
            points.Add(point);
            progress?.Invoke($"layer products h={h} tokens {tokens}: bf16 {point.Bf16Tflops:0.0} TFLOP/s, fp32 {point.Fp32Tflops:0.0} TFLOP/s");
        }
        return points;
    }

    /// <summary>
    /// A layer's forward (no autograd), recompute (autograd from a detached input) and backward at <paramref name="mb"/> ×
    /// <paramref name="seq"/>, medians over the options' repeats after a warm-up, each pass re-seeding dropout as the trainers
    /// do before every unit (<see cref="DropoutReplay"/>).
    /// </summary>
    private static List<LayerSample> WorkPasses(DecoderLayer layer, FlatParameters parameters, ModelSpec spec, int mb, int seq,
        EngineKernelProbeOptions options, Device device, ScalarType dtype, Func<Action, double> time)
    {
        int h = spec.HiddenSize;
        var settings = Settings(mb, seq, options.Precision);
        double flops = LayerWork.ForwardFlops(spec, settings, 0), saved = LayerWork.ForwardSavedBytes(spec, settings, 0);
        using var scope = NewDisposeScope();
        var input = randn([mb, seq, h], dtype, device);
        var incoming = randn([mb, seq, h], dtype, device);
        int repeats = options.Repeats;
        var replay = new DropoutReplay(options.Seed, 1, 0);
        double forward = Median(repeats, () => time(() => { using var _ = no_grad(); replay.Before(0, device); layer.forward(input).Dispose(); }));
        var passes = new List<(double Recompute, double Backward)>();
        for (int i = 0; i <= Math.Max(1, repeats); i++)
        {
            using var inner = NewDisposeScope();
            var x = input.detach().requires_grad_(true);
            Tensor output = null!;
            double recompute = time(() => { replay.Before(0, device); output = layer.forward(x); });
            double backward = time(() => output.backward([incoming]));
            parameters.ClearGradients();
            if (i > 0) passes.Add((recompute, backward)); // the first is the warm-up
        }
        return
        [
            new LayerSample("layer", "forward", h, mb, seq, flops, saved, forward),
            new LayerSample("layer", "recompute", h, mb, seq, flops, saved, MedianOf(passes.Select(p => p.Recompute))),
            new LayerSample("layer", "backward", h, mb, seq, flops, saved, MedianOf(passes.Select(p => p.Backward))),
        ];
    }

    /// <summary>
    /// The dispatch floors (<see cref="Floors"/>, the smallest over <see cref="EngineKernelProbeOptions.HiddenSizes"/>) of each
    /// layer kind of <see cref="EngineKernelProbeOptions.FloorFamilies"/> other than <paramref name="mainKind"/>, the first
    /// family of a kind timing it.
    /// </summary>
    private static List<KindFloorSample> KindFloors(EngineKernelProbeOptions options, string mainKind, Device device, ScalarType dtype,
        Func<Action, double> time, Action<string>? progress)
    {
        var result = new List<KindFloorSample>();
        foreach (var (family, kind) in EngineLayerKind.OnePerKind(options.FloorFamilies, except: mainKind))
        {
            double forward = double.NaN, autograd = double.NaN, backward = double.NaN;
            List<LayerSample> work = [];
            // The work ratio to the main fit: one work-bound shape (the most tokens) at the largest hidden size timed.
            int widest = options.HiddenSizes.Count > 0 ? options.HiddenSizes.Max() : 0;
            var (workMb, workSeq) = options.Shapes.Count > 0 ? options.Shapes.MaxBy(x => (long)x.MicroBatch * x.SeqLen) : (0, 0);
            foreach (int h in options.HiddenSizes)
            {
                var spec = CpuComputeProbe.Widened(family, h);
                using var parameters = LayerParameters(spec, dtype, device);
                var layer = TrainingLayer(spec, parameters);
                var floors = Floors(layer, parameters, h, options, device, dtype, time);
                forward = MinOf(forward, floors.Forward);
                autograd = MinOf(autograd, floors.Recompute);
                backward = MinOf(backward, floors.Backward);
                if (h == widest && workMb > 0 && work.Count == 0)
                {
                    // Optional: a kind whose work pass fails (out of device memory at the widest shape, say) keeps its floors, no ratios.
                    try
                    {
                        work = WorkPasses(layer, parameters, spec, workMb, workSeq, options, device, dtype, time);
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        progress?.Invoke($"work of {family.Name} ({kind}) at h={h} {workMb}×{workSeq} not measured ({e.GetType().Name}: {e.Message}); its floors are kept, without work ratios");
                    }
                }
            }
            result.Add(new KindFloorSample(kind, family.Name, forward, autograd, backward) { Work = work });
            progress?.Invoke($"floors of {family.Name} ({kind}): forward {forward * 1e6:0} µs, with autograd {autograd * 1e6:0} µs, backward {backward * 1e6:0} µs" +
                (work.Count == 3 ? $"; work at h={widest} {workMb}×{workSeq}: forward {work[0].Seconds * 1e3:0.00} ms, backward {work[2].Seconds * 1e3:0.00} ms" : ""));
        }
        return result;
    }

    private static double MinOf(double a, double b) => double.IsNaN(a) ? b : Math.Min(a, b);

    /// <summary>
    /// The dispatch floors of <paramref name="layer"/> at <see cref="EngineKernelProbeOptions.FloorShape"/>: per pass, the
    /// median over repeats of <see cref="EngineKernelProbeOptions.FloorChain"/> passes run back to back between two waits
    /// (forwards without autograd; forwards recording autograd from detached inputs; then those graphs' backwards in turn),
    /// each pass re-seeding dropout as the trainers do before every unit (<see cref="DropoutReplay"/>).
    /// </summary>
    private static (double Forward, double Recompute, double Backward) Floors(DecoderLayer layer, FlatParameters parameters, int h,
        EngineKernelProbeOptions options, Device device, ScalarType dtype, Func<Action, double> time)
    {
        var (mb, seq) = options.FloorShape;
        int chain = Math.Max(1, options.FloorChain);
        using var scope = NewDisposeScope();
        var input = randn([mb, seq, h], dtype, device);
        var incoming = randn([mb, seq, h], dtype, device);
        var replay = new DropoutReplay(options.Seed, 1, 0);
        // The floor is a few hundred microseconds of host work: more repeats steady its median against scheduling noise.
        int repeats = 4 * Math.Max(1, options.Repeats);
        double forward = Median(repeats, () => time(() =>
        {
            using var _ = no_grad();
            for (int i = 0; i < chain; i++) { replay.Before(0, device); layer.forward(input).Dispose(); }
        }) / chain);
        var passes = new List<(double Recompute, double Backward)>();
        for (int r = 0; r <= repeats; r++)
        {
            using var inner = NewDisposeScope();
            var outputs = new Tensor[chain];
            double recompute = time(() =>
            {
                for (int i = 0; i < chain; i++)
                {
                    replay.Before(0, device);
                    outputs[i] = layer.forward(input.detach().requires_grad_(true));
                }
            });
            double backward = time(() => { for (int i = chain - 1; i >= 0; i--) outputs[i].backward([incoming]); });
            parameters.ClearGradients();
            if (r > 0) passes.Add((recompute / chain, backward / chain)); // the first is the warm-up
        }
        return (forward, MedianOf(passes.Select(p => p.Recompute)), MedianOf(passes.Select(p => p.Backward)));
    }

    private static List<LayerSample> TimeHead(EngineKernelProbeOptions options, Device device, ScalarType dtype, Func<Action, double> time, Action<string>? progress)
    {
        var spec = options.Family;
        using var parameters = new FlatParameters(ParameterLayout.ForOuter(spec), dtype, device);
        Initialise(parameters);
        var outer = new OuterBlock(spec, parameters);
        outer.train();
        var samples = new List<LayerSample>();
        foreach (var (mb, seq) in options.HeadShapes)
        {
            var settings = Settings(mb, seq, options.Precision);
            int unit = spec.NumLayers;
            double flops = LayerWork.ForwardFlops(spec, settings, unit), saved = LayerWork.ForwardSavedBytes(spec, settings, unit);
            using var scope = NewDisposeScope();
            var hidden = randn([mb, seq, spec.HiddenSize], dtype, device);
            var targets = randint(spec.VocabSize, [mb, seq], ScalarType.Int64, device);
            var runs = new List<(double Forward, double Backward)>();
            for (int i = 0; i <= Math.Max(1, options.Repeats); i++)
            {
                using var inner = NewDisposeScope();
                var x = hidden.detach().requires_grad_(true);
                Tensor loss = null!;
                double forward = time(() => { loss = outer.Loss(x, targets, 1); loss.item<float>(); });
                double backward = time(() => loss.backward());
                parameters.ClearGradients();
                if (i > 0) runs.Add((forward, backward));
            }
            double f = MedianOf(runs.Select(r => r.Forward)), b = MedianOf(runs.Select(r => r.Backward));
            samples.Add(new LayerSample("head", "forward", spec.HiddenSize, mb, seq, flops, saved, f));
            samples.Add(new LayerSample("head", "backward", spec.HiddenSize, mb, seq, flops, saved, b));
            progress?.Invoke($"head h={spec.HiddenSize} vocab {spec.VocabSize} {mb}×{seq}: forward {f * 1e3:0.00} ms, backward {b * 1e3:0.00} ms");
        }
        return samples;
    }

    /// <summary>The engine's device AdamW (DeviceTrainer's) over one flat unit: fp32 master and moments, gradient and working copy in the training precision.</summary>
    private static (double Seconds, string Name) TimeOptimizer(EngineKernelProbeOptions options, Device device, ScalarType dtype, Func<Action, double> time)
    {
        long n = Math.Max(1, options.OptimizerElements);
        using var scope = NewDisposeScope();
        var master = randn([n], ScalarType.Float32, device);
        var gradient = randn([n], dtype, device);
        var m = zeros([n], ScalarType.Float32, device);
        var v = zeros([n], ScalarType.Float32, device);
        Tensor? working = dtype == ScalarType.Float32 ? null : zeros([n], dtype, device);
        var adam = DeviceAdamW.For(device, new AdamWOptions(), preferFused: dtype != ScalarType.Float16);
        int step = 1;
        double seconds = Median(options.Repeats, () => time(() => adam.Update(master, gradient, m, v, working, step++, 1f)));
        return (seconds, adam.Name);
    }

    private static TrainingSettings Settings(int microBatch, int seqLen, Precision precision) =>
        new() { MicroBatch = microBatch, SeqLen = seqLen, Precision = precision };

    /// <summary>A decoder layer's parameters of <paramref name="spec"/>'s shape in one flat buffer, initialised (<see cref="Initialise"/>).</summary>
    private static FlatParameters LayerParameters(ModelSpec spec, ScalarType dtype, Device device)
    {
        var parameters = new FlatParameters(ParameterLayout.ForLayer(spec), dtype, device);
        Initialise(parameters);
        return parameters;
    }

    /// <summary>The engine's decoder layer over <paramref name="parameters"/>, in training mode (dropout on, as the trainers run it).</summary>
    private static DecoderLayer TrainingLayer(ModelSpec spec, FlatParameters parameters)
    {
        var layer = new DecoderLayer(spec, parameters);
        layer.train();
        return layer;
    }

    /// <summary>Small random weights: zeros would make norms and GELU take shortcuts, large ones overflow.</summary>
    internal static void Initialise(FlatParameters parameters)
    {
        using var _ = no_grad();
        parameters.Flat.normal_(0, 0.02);
    }

    /// <summary>Median of <paramref name="repeats"/> timings after one untimed warm-up.</summary>
    private static double Median(int repeats, Func<double> once)
    {
        once();
        return MedianOf(Enumerable.Range(0, Math.Max(1, repeats)).Select(_ => once()).ToList());
    }

    /// <summary>The upper median of <paramref name="values"/>; NaN when there are none.</summary>
    internal static double MedianOf(IEnumerable<double> values)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        return sorted.Length == 0 ? double.NaN : sorted[sorted.Length / 2];
    }
}

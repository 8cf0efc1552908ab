using System.Diagnostics;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using TorchSharp;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Probes;

/// <summary>What the CPU compute probe times, and how often.</summary>
public sealed record CpuComputeProbeOptions
{
    /// <summary>The model whose layer kind (norm, FFN, dropout, vocabulary) is timed; its hidden size is varied.</summary>
    public required ModelSpec Family { get; init; }
    /// <summary>
    /// Hidden sizes of the timed decoder layers (64-wide heads, FFN four times wider). From 64: a fit to 256–1,024 alone put a
    /// unit's fixed cost at what those widths spend on thread start-up (0.5–2.2 ms), which a 64-wide layer (0.3–0.7 ms a pass)
    /// does not, and planned tiny models 2–6× slow (docs/engine.md, "Resident and bf16 runs on the CPU device").
    /// </summary>
    public IReadOnlyList<int> HiddenSizes { get; init; } = [64, 128, 256, 512, 768, 1024];
    /// <summary>(micro-batch, sequence) shapes of the timed layers.</summary>
    public IReadOnlyList<(int MicroBatch, int SeqLen)> Shapes { get; init; } = [(1, 128), (4, 128), (1, 256)];
    /// <summary>(micro-batch, sequence) shapes at which the family's own head and loss are timed.</summary>
    public IReadOnlyList<(int MicroBatch, int SeqLen)> HeadShapes { get; init; } = [(1, 128), (2, 128)];
    /// <summary>Hidden sizes of the layer-shaped matmul benchmark, (512 × h)·(h × 4h).</summary>
    public IReadOnlyList<int> MatmulHidden { get; init; } = [768, 1024, 2048];
    /// <summary>Timed repeats of each sample after one untimed warm-up; the median is kept.</summary>
    public int Repeats { get; init; } = 5;
    /// <summary>Whether to time bf16 matmuls as well as fp32.</summary>
    public bool Bf16 { get; init; } = true;
    /// <summary>Whether to run the matmul benchmark at all (a second pass over the layers in another precision needs it once).</summary>
    public bool Matmuls { get; init; } = true;
    /// <summary>
    /// The precision the layers, head and embedding are timed in: the engine computes in the training precision on a CPU (bf16
    /// training runs bf16 layers, whose small operations cost other than fp32's), so each precision has its own fit.
    /// </summary>
    public Precision LayerPrecision { get; init; } = Precision.Fp32;
    public long Seed { get; init; } = 1234;
}

/// <summary>One matmul benchmark: a layer-shaped product at one precision.</summary>
public sealed record MatmulSample(string Precision, int Tokens, int Hidden, double Gflops);

/// <summary>
/// One timed pass (forward, recompute or backward) of a unit, with the work the simulator charges for its
/// forward (<see cref="LayerWork"/>): matmul FLOPs and saved bytes.
/// </summary>
public sealed record LayerSample(string Unit, string Pass, int Hidden, int MicroBatch, int SeqLen,
    double Flops, double SavedBytes, double Seconds)
{
    public bool IsBackward => Pass == "backward";
}

/// <summary>What the CPU compute probe measured: TorchSharp's thread count, matmul rates and timed unit passes.</summary>
public sealed record CpuComputeMeasurement(int Threads, IReadOnlyList<MatmulSample> Matmuls, IReadOnlyList<LayerSample> Layers)
{
    /// <summary>
    /// The family's dense vocabulary × hidden gradient bytes (in <see cref="LayerPrecision"/>) over its timed embedding backward
    /// (after the head's backward, so a tied weight's gradient is accumulated into as in training), GB/s; null when not timed.
    /// </summary>
    public double? VocabGradientGbps { get; init; }

    /// <summary>The precision the layers, head and embedding were timed in (<see cref="CpuComputeProbeOptions.LayerPrecision"/>).</summary>
    public Precision LayerPrecision { get; init; } = Precision.Fp32;

    /// <summary>The best median rate at <paramref name="precision"/> over the benchmark's shapes, GFLOP/s; 0 when not measured.</summary>
    public double BestGflops(string precision) => Matmuls.Where(m => m.Precision == precision).Select(m => m.Gflops).DefaultIfEmpty(0).Max();
}

/// <summary>
/// Times, with TorchSharp on the CPU and the engine's own modules, what the simulator's CPU compute model needs:
/// dense matmul rates for layer-shaped products (fp32, bf16) and forward, recompute and backward of decoder
/// layers of several widths and token counts, plus the family's head and loss. Passes run exactly as
/// <c>LayerwiseTrainer</c> runs them (forward under <c>no_grad</c>; recompute with autograd from a detached input;
/// backward of an incoming gradient), in training mode so dropout costs what it costs in a run.
/// </summary>
public static class CpuComputeProbe
{
    /// <summary>Runs the benchmark; <paramref name="progress"/> receives one line per sample.</summary>
    public static CpuComputeMeasurement Measure(CpuComputeProbeOptions options, Action<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        TorchRuntime.EnsureReady();
        manual_seed(options.Seed);
        var matmuls = new List<MatmulSample>();
        foreach (var (name, type) in options.Matmuls ? Precisions(options.Bf16) : [])
            foreach (int h in options.MatmulHidden)
            {
                const int tokens = 512;
                using var scope = NewDisposeScope();
                var a = randn(tokens, h, type);
                var b = randn(h, 4 * h, type);
                double seconds = Median(options.Repeats, () => matmul(a, b).Dispose());
                var sample = new MatmulSample(name, tokens, h, 2.0 * tokens * h * 4 * h / seconds / 1e9);
                matmuls.Add(sample);
                progress?.Invoke($"matmul {name} ({tokens} × {h})·({h} × {4 * h}): {sample.Gflops:0.0} GFLOP/s");
            }

        var layers = new List<LayerSample>();
        foreach (int h in options.HiddenSizes)
        {
            var spec = Widened(options.Family, h);
            using var parameters = new FlatParameters(ParameterLayout.ForLayer(spec), LayerType(options), CPU);
            Initialise(parameters);
            var layer = new DecoderLayer(spec, parameters);
            layer.train();
            foreach (var (mb, seq) in options.Shapes)
            {
                var settings = Settings(mb, seq, options.LayerPrecision);
                double flops = LayerWork.ForwardFlops(spec, settings, 0), saved = LayerWork.ForwardSavedBytes(spec, settings, 0);
                using var scope = NewDisposeScope();
                var input = randn(mb, seq, h, LayerType(options));
                var incoming = randn(mb, seq, h, LayerType(options));
                double forward = Median(options.Repeats, () =>
                {
                    using var _ = no_grad();
                    layer.forward(input).Dispose();
                });
                var (recompute, backward) = MedianPair(options.Repeats, () =>
                {
                    using var inner = NewDisposeScope();
                    var x = input.detach().requires_grad_(true);
                    long t0 = Stopwatch.GetTimestamp();
                    var output = layer.forward(x);
                    long t1 = Stopwatch.GetTimestamp();
                    output.backward([incoming]);
                    long t2 = Stopwatch.GetTimestamp();
                    parameters.ClearGradients();
                    return (Stopwatch.GetElapsedTime(t0, t1).TotalSeconds, Stopwatch.GetElapsedTime(t1, t2).TotalSeconds);
                });
                layers.Add(new LayerSample("layer", "forward", h, mb, seq, flops, saved, forward));
                layers.Add(new LayerSample("layer", "recompute", h, mb, seq, flops, saved, recompute));
                layers.Add(new LayerSample("layer", "backward", h, mb, seq, flops, saved, backward));
                progress?.Invoke($"layer h={h} {mb}×{seq}: forward {forward * 1e3:0.0} ms, recompute {recompute * 1e3:0.0} ms, backward {backward * 1e3:0.0} ms");
            }
        }
        layers.AddRange(TimeHead(options, progress));
        return new CpuComputeMeasurement(get_num_threads(), matmuls, layers)
        {
            VocabGradientGbps = TimeEmbeddingBackward(options, progress), LayerPrecision = options.LayerPrecision,
        };
    }

    /// <summary>The family's final norm, head and loss (unit L), forward and backward, at its own width and vocabulary.</summary>
    private static List<LayerSample> TimeHead(CpuComputeProbeOptions options, Action<string>? progress)
    {
        var spec = options.Family;
        using var parameters = new FlatParameters(ParameterLayout.ForOuter(spec), LayerType(options), CPU);
        Initialise(parameters);
        var outer = new OuterBlock(spec, parameters);
        outer.train();
        var samples = new List<LayerSample>();
        foreach (var (mb, seq) in options.HeadShapes)
        {
            var settings = Settings(mb, seq, options.LayerPrecision);
            int unit = spec.NumLayers;
            double flops = LayerWork.ForwardFlops(spec, settings, unit), saved = LayerWork.ForwardSavedBytes(spec, settings, unit);
            using var scope = NewDisposeScope();
            var hidden = randn(mb, seq, spec.HiddenSize, LayerType(options));
            var targets = randint(spec.VocabSize, [mb, seq], ScalarType.Int64);
            var (forward, backward) = MedianPair(options.Repeats, () =>
            {
                using var inner = NewDisposeScope();
                var x = hidden.detach().requires_grad_(true);
                long t0 = Stopwatch.GetTimestamp();
                var loss = outer.Loss(x, targets, 1);
                loss.item<float>();
                long t1 = Stopwatch.GetTimestamp();
                loss.backward();
                long t2 = Stopwatch.GetTimestamp();
                parameters.ClearGradients();
                return (Stopwatch.GetElapsedTime(t0, t1).TotalSeconds, Stopwatch.GetElapsedTime(t1, t2).TotalSeconds);
            });
            samples.Add(new LayerSample("head", "forward", spec.HiddenSize, mb, seq, flops, saved, forward));
            samples.Add(new LayerSample("head", "backward", spec.HiddenSize, mb, seq, flops, saved, backward));
            progress?.Invoke($"head h={spec.HiddenSize} vocab {spec.VocabSize} {mb}×{seq}: forward {forward * 1e3:0.0} ms, backward {backward * 1e3:0.0} ms");
        }
        return samples;
    }

    /// <summary>
    /// The embedding's backward at the family's vocabulary and width, after the head's backward has filled the
    /// (tied) weight's gradient, as in a training step; returns the dense gradient's bytes per second, GB/s.
    /// </summary>
    private static double TimeEmbeddingBackward(CpuComputeProbeOptions options, Action<string>? progress)
    {
        var spec = options.Family;
        using var parameters = new FlatParameters(ParameterLayout.ForOuter(spec), LayerType(options), CPU);
        Initialise(parameters);
        var outer = new OuterBlock(spec, parameters);
        outer.train();
        var (mb, seq) = options.HeadShapes[0];
        using var scope = NewDisposeScope();
        var tokens = randint(spec.VocabSize, [mb, seq], ScalarType.Int64);
        var hidden = randn(mb, seq, spec.HiddenSize, LayerType(options));
        double seconds = MedianPair(options.Repeats, () =>
        {
            using var inner = NewDisposeScope();
            var embedded = outer.forward(tokens);
            outer.Loss(hidden.detach().requires_grad_(true), tokens, 1).backward();
            var incoming = randn_like(embedded);
            long t0 = Stopwatch.GetTimestamp();
            embedded.backward([incoming]);
            double elapsed = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            parameters.ClearGradients();
            return (elapsed, 0);
        }).First;
        double bytes = (double)spec.VocabSize * spec.HiddenSize * (options.LayerPrecision == Precision.Fp32 ? 4 : 2);
        progress?.Invoke($"embedding backward vocab {spec.VocabSize} × {spec.HiddenSize}: {seconds * 1e3:0.0} ms ({bytes / seconds / 1e9:0.00} GB/s of dense gradient)");
        return bytes / seconds / 1e9;
    }

    /// <summary>The family at hidden size <paramref name="hidden"/>: 64-wide heads (at least one), FFN four times wider.</summary>
    public static ModelSpec Widened(ModelSpec family, int hidden)
    {
        int heads = Math.Max(1, hidden / 64);
        return family with
        {
            Name = $"{family.Name}-h{hidden}",
            HiddenSize = hidden,
            NumHeads = heads,
            NumKvHeads = family.NumKvHeads is null ? null : Math.Max(1, heads * family.KvHeads / family.NumHeads),
            FfnSize = 4 * hidden,
        };
    }

    private static TrainingSettings Settings(int microBatch, int seqLen, Precision precision) =>
        new() { MicroBatch = microBatch, SeqLen = seqLen, Precision = precision };

    private static ScalarType LayerType(CpuComputeProbeOptions options) => EngineSettings.DType(options.LayerPrecision);

    private static IEnumerable<(string, ScalarType)> Precisions(bool bf16) =>
        bf16 ? [("fp32", ScalarType.Float32), ("bf16", ScalarType.BFloat16)] : [("fp32", ScalarType.Float32)];

    /// <summary>Small random weights: zeros would make norms and GELU take shortcuts, large ones overflow.</summary>
    private static void Initialise(FlatParameters parameters)
    {
        using var _ = no_grad();
        parameters.Flat.normal_(0, 0.02);
    }

    private static double Median(int repeats, Action once) => MedianPair(repeats, () =>
    {
        long t0 = Stopwatch.GetTimestamp();
        once();
        return (Stopwatch.GetElapsedTime(t0).TotalSeconds, 0);
    }).First;

    /// <summary>Medians of two timings taken together, after one untimed warm-up.</summary>
    private static (double First, double Second) MedianPair(int repeats, Func<(double, double)> once)
    {
        once();
        var firsts = new double[Math.Max(1, repeats)];
        var seconds = new double[firsts.Length];
        for (int i = 0; i < firsts.Length; i++) (firsts[i], seconds[i]) = once();
        Array.Sort(firsts);
        Array.Sort(seconds);
        return (firsts[firsts.Length / 2], seconds[seconds.Length / 2]);
    }
}

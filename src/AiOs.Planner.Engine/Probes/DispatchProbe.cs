using System.Diagnostics;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using TorchSharp;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Probes;

/// <summary>What the dispatch probe times (<c>aios bench-dispatch</c>).</summary>
public sealed record DispatchProbeOptions
{
    /// <summary>The device: <c>cuda</c>, <c>cuda:N</c> or <c>cpu</c>.</summary>
    public string Device { get; init; } = "cuda";
    /// <summary>The precision of the tensors and of the layer.</summary>
    public Precision Precision { get; init; } = Precision.Bf16;
    /// <summary>Calls per timed sample of the single-operation rows.</summary>
    public int Calls { get; init; } = 1000;
    /// <summary>Timed samples per row after one untimed warm-up; the (upper) median is kept.</summary>
    public int Repeats { get; init; } = 7;
    /// <summary>The model whose decoder layer is timed at <see cref="LayerShape"/>; null: no layer rows.</summary>
    public ModelSpec? Layer { get; init; }
    /// <summary>(micro-batch, sequence) of the layer's input: small, so its passes are the host's dispatch.</summary>
    public (int MicroBatch, int SeqLen) LayerShape { get; init; } = (1, 8);
    /// <summary>Layer passes back to back in one sample, as a step launches layer after layer.</summary>
    public int LayerChain { get; init; } = 8;
    /// <summary>
    /// Also capture the layer's forward (no autograd, eval mode) into a CUDA graph and time its replay against the eager
    /// pass (<see cref="CudaGraphCapture"/>; CUDA only): what a launch-bound pass would cost the host as one graph launch.
    /// </summary>
    public bool Graph { get; init; }
    public long Seed { get; init; } = 1234;
}

/// <summary>One row of the dispatch probe: the host's time and managed allocation per call of one kind.</summary>
/// <param name="Name">Row id (<c>op</c>, <c>backward_node</c>, <c>layer_backward</c>…).</param>
/// <param name="What">What one call is.</param>
/// <param name="HostMicroseconds">Median host time per call: the time until the call returns, not until the device finishes it.</param>
/// <param name="AllocatedBytes">Managed bytes allocated per call (the .NET side's garbage per call).</param>
/// <param name="CallsPerSample">Calls in one timed sample.</param>
public sealed record DispatchCost(string Name, string What, double HostMicroseconds, double AllocatedBytes, int CallsPerSample);

/// <summary>What the dispatch probe measured.</summary>
/// <param name="Device">Where it ran.</param>
/// <param name="Costs">The rows, single operations first, then the layer's passes.</param>
/// <param name="Layer">The timed layer's model and shape; null when none was timed.</param>
public sealed record DispatchMeasurement(string Device, IReadOnlyList<DispatchCost> Costs, string? Layer);

/// <summary>
/// Splits a launch-bound step's host time into its parts: one libtorch operation through TorchSharp (with and without a
/// new tensor, a view that launches nothing, one recording autograd), one node of autograd's backward (inside one call
/// and as a call of its own), and a decoder layer's forward, forward recording autograd, and backward through the
/// engine's own path (<see cref="FlatParameters.Backward"/>); on CUDA also the driver calls the engine's bookkeeping makes
/// per unit (a memory sample, a span's timing event). Each time is the host's, until the calls return: on CUDA
/// the device runs behind (tiny tensors, a few microseconds each), so a row is what the host pays per call in a step
/// whose device is waiting for it. A layer pass divided by the operation rows says how many operations' worth of host
/// work it is.
/// </summary>
public static class DispatchProbe
{
    /// <summary>Runs the probe; <paramref name="progress"/> receives one line per row.</summary>
    public static DispatchMeasurement Measure(DispatchProbeOptions options, Action<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Calls < 1) throw new ArgumentException($"Calls {options.Calls}: give one or more.", nameof(options));
        if (options.Repeats < 1) throw new ArgumentException($"Repeats {options.Repeats}: give one or more.", nameof(options));
        if (options.LayerShape.MicroBatch < 1 || options.LayerShape.SeqLen < 1 || options.LayerChain < 1)
            throw new ArgumentException($"Layer shape {options.LayerShape.MicroBatch}×{options.LayerShape.SeqLen}, chain {options.LayerChain}: give 1 or more for each.", nameof(options));
        var device = new Device(options.Device);
        TorchRuntime.EnsureReady(TorchRuntime.DeviceTypeOf(options.Device));
        manual_seed(options.Seed);
        bool cuda = device.type == DeviceType.CUDA;
        ScalarType dtype = EngineSettings.DType(options.Precision);
        void Sync() { if (cuda) torch.cuda.synchronize(); }
        var rows = new List<DispatchCost>();
        int n = options.Calls;
        // Calls per sample of the costlier rows (autograd calls, driver calls, the layer's operations).
        int calls = Math.Max(1, n / 10);

        // The host's time of once() divided by its calls, the device drained before (not after: only the host's part counts).
        DispatchCost Row(string name, string what, int perSample, Action once, Action? after = null)
        {
            double Sample(out double bytes)
            {
                Sync();
                long alloc0 = GC.GetAllocatedBytesForCurrentThread();
                long t0 = Stopwatch.GetTimestamp();
                once();
                double seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                bytes = (GC.GetAllocatedBytesForCurrentThread() - alloc0) / (double)perSample;
                after?.Invoke();
                return seconds / perSample;
            }
            Sample(out _);
            var samples = new List<(double Seconds, double Bytes)>();
            for (int r = 0; r < options.Repeats; r++) samples.Add((Sample(out double b), b));
            var median = samples.OrderBy(s => s.Seconds).ElementAt(samples.Count / 2);
            var row = new DispatchCost(name, what, median.Seconds * 1e6, median.Bytes, perSample);
            rows.Add(row);
            progress?.Invoke($"{name}: {row.HostMicroseconds:0.0} µs, {row.AllocatedBytes:0} managed bytes a call ({what})");
            Sync();
            return row;
        }

        using (var scope = NewDisposeScope())
        {
            var x = randn([8, 8], dtype, device);
            var one = ones([8, 8], dtype, device);
            using (no_grad())
            {
                Row("op", "x + y into a new tensor, disposed at once (no autograd)", n, () =>
                {
                    for (int i = 0; i < n; i++) x.add(one).Dispose();
                });
                Row("op_scoped", "x + y into a new tensor kept by a dispose scope, as the layer's code keeps its temporaries", n, () =>
                {
                    using var inner = NewDisposeScope();
                    for (int i = 0; i < n; i++) x.add(one);
                });
                Row("op_in_place", "x += y in place (no new tensor)", n, () =>
                {
                    for (int i = 0; i < n; i++) x.add_(one);
                });
                Row("view", "a view of x, disposed at once (no kernel)", n, () =>
                {
                    for (int i = 0; i < n; i++) x.view(64).Dispose();
                });
            }
            var leaf = randn([8, 8], dtype, device).requires_grad_(true);
            // n products from the leaf, recording autograd; its tensors are the current dispose scope's.
            Tensor Chain()
            {
                Tensor y = leaf;
                for (int i = 0; i < n; i++) y = y.mul(one);
                return y;
            }
            Row("op_autograd", "y · c recording autograd (a chain of n from one leaf, disposed by its scope)", n, () =>
            {
                using var inner = NewDisposeScope();
                Chain();
            });
            // Backward rows: the chain rebuilt untimed before each sample, then one autograd call over it.
            Tensor? built = null;
            void Build()
            {
                built?.Dispose();
                using var inner = NewDisposeScope();
                built = Chain().MoveToOuterDisposeScope();
            }
            Build();
            Row("backward_node", "one node of a backward over a chain of n (one autograd call)", n, () =>
            {
                using var inner = NewDisposeScope();
                autograd.grad([built!], [leaf], [one], false, false, false);
            }, after: Build);
            built?.Dispose();
            var singles = new Tensor[calls];
            void BuildSingles()
            {
                for (int i = 0; i < calls; i++) { singles[i]?.Dispose(); singles[i] = leaf.mul(one).DetachFromDisposeScope(); }
            }
            BuildSingles();
            Row("backward_call", "an autograd call over one node (the engine's per-call cost: its thread, its graph walk)", calls, () =>
            {
                using var inner = NewDisposeScope();
                for (int i = 0; i < calls; i++) autograd.grad([singles[i]], [leaf], [one], false, false, false);
            }, after: BuildSingles);
            foreach (var s in singles) s.Dispose();
            if (cuda)
            {
                // What the engine's own bookkeeping asks of the driver per unit: the memory sample each layer's backward
                // takes (DeviceMemory.Sample) and the timing event each span's ends queue (CudaSpanClock.Mark).
                Row("driver_memory_info", "the driver's free and total memory (cuMemGetInfo), as DeviceMemory.Sample reads it", calls, () =>
                {
                    for (int i = 0; i < calls; i++) CudaDriver.MemoryInfo();
                });
                using var clock = new CudaSpanClock();
                Row("span_mark", "a timing event queued on the stream (cuEventRecord), as each span's start and end queue one", calls, () =>
                {
                    for (int i = 0; i < calls; i++) clock.Mark();
                }, after: () => clock.Settle());
            }
        }

        string? layerName = null;
        if (options.Layer is { } spec)
        {
            var (mb, seq) = options.LayerShape;
            layerName = $"{spec.Name} layer at {mb}×{seq} tokens";
            int chainLength = options.LayerChain;
            using var parameters = new FlatParameters(ParameterLayout.ForLayer(spec), dtype, device);
            EngineKernelProbe.Initialise(parameters);
            var layer = new DecoderLayer(spec, parameters);
            layer.train();
            using var scope = NewDisposeScope();
            var input = randn([mb, seq, spec.HiddenSize], dtype, device);
            var incoming = randn([mb, seq, spec.HiddenSize], dtype, device);
            var replay = new DropoutReplay(options.Seed, 1, 0);
            // The layer's own operations one by one, at its shapes, as its forward calls them (no autograd).
            var rows2d = input.reshape(mb * seq, spec.HiddenSize);
            var q = randn([mb, spec.NumHeads, seq, spec.HeadDim], dtype, device);
            using (no_grad())
            {
                Row("layer_op_norm", $"the layer's norm ({spec.Norm}) on its {mb * seq} rows", calls, () =>
                {
                    using var inner = NewDisposeScope();
                    for (int i = 0; i < calls; i++) TransformerOps.Norm(rows2d, spec, parameters, "ln1");
                });
                bool outBias = spec.AttentionOutputBias ?? spec.Bias;
                Row("layer_op_linear", outBias ? "the layer's attention output product with its bias (addmm)" : "the layer's attention output product (mm, no bias)", calls, () =>
                {
                    using var inner = NewDisposeScope();
                    for (int i = 0; i < calls; i++) TransformerOps.Linear(rows2d, parameters, "attn.o");
                });
                Row("layer_op_attention", spec.Dropout > 0 ? "causal scaled-dot-product attention at the layer's heads, with its dropout" : "causal scaled-dot-product attention at the layer's heads", calls, () =>
                {
                    using var inner = NewDisposeScope();
                    for (int i = 0; i < calls; i++) nn.functional.scaled_dot_product_attention(q, q, q, p: spec.Dropout, is_casual: true);
                });
                // A model without dropout makes no dropout call (DecoderLayer skips it), so it gets no row.
                if (spec.Dropout > 0)
                    Row("layer_op_dropout", $"dropout ({spec.Dropout}) on the layer's rows", calls, () =>
                    {
                        using var inner = NewDisposeScope();
                        for (int i = 0; i < calls; i++) nn.functional.dropout(rows2d, spec.Dropout, training: true);
                    });
                Row("layer_op_reseed", "re-seeding the generators before a unit (DropoutReplay.Before), as each layer's pass does", calls, () =>
                {
                    for (int i = 0; i < calls; i++) replay.Before(i, device);
                });
            }
            Row("layer_forward", "a layer's forward without autograd (the layer-by-layer trainer's forward)", chainLength, () =>
            {
                using var _ = no_grad();
                for (int i = 0; i < chainLength; i++) { replay.Before(i, device); layer.forward(input).Dispose(); }
            });
            var outputs = new Tensor[chainLength];
            var inputs = new Tensor[chainLength];
            void Forward()
            {
                for (int i = 0; i < chainLength; i++)
                {
                    replay.Before(i, device);
                    inputs[i] = input.detach().requires_grad_(true).DetachFromDisposeScope();
                    outputs[i] = layer.forward(inputs[i]).DetachFromDisposeScope();
                }
            }
            void Release()
            {
                for (int i = 0; i < chainLength; i++) { outputs[i]?.Dispose(); inputs[i]?.Dispose(); outputs[i] = null!; inputs[i] = null!; }
                parameters.ClearGradients();
            }
            Row("layer_forward_autograd", "a layer's forward recording autograd (the resident trainer's forward)", chainLength, Forward, after: Release);
            Forward();
            Row("layer_backward", "a layer's backward through the engine's one autograd call (FlatParameters.Backward), its held gradients then dropped", chainLength, () =>
            {
                using var inner = NewDisposeScope();
                for (int i = chainLength - 1; i >= 0; i--)
                {
                    parameters.Backward(outputs[i], inputs[i], incoming);
                    parameters.ClearGradients();
                }
            }, after: () => { Release(); Forward(); });
            Release();
            if (options.Graph && cuda) GraphRows(layer, input, chainLength, device, Row, Sync);
        }
        return new DispatchMeasurement(options.Device, rows, layerName);
    }

    /// <summary>
    /// The layer's forward captured once into a CUDA graph and replayed: the host's time per replay, then, with the device
    /// drained after each chain, the eager and the replayed pass's whole time. The replay's output is checked against the
    /// eager pass's (the same kernels on another stream: equal unless a kernel is chosen differently there).
    /// </summary>
    private static void GraphRows(DecoderLayer layer, Tensor input, int chain, Device device,
        Func<string, string, int, Action, Action?, DispatchCost> row, Action sync)
    {
        layer.eval();
        try
        {
            using var scope = NewDisposeScope();
            Tensor eager;
            using (no_grad()) eager = layer.forward(input);
            Tensor? captured = null;
            using var graph = new CudaGraphCapture();
            graph.Capture(Math.Max(0, (int)device.index),
                warmUp: () => { using var _ = no_grad(); for (int i = 0; i < 3; i++) layer.forward(input).Dispose(); },
                work: () => { using var _ = no_grad(); captured = layer.forward(input).DetachFromDisposeScope(); });
            graph.Replay();
            sync();
            double difference;
            using (no_grad())
            using (var d = (captured!.to(ScalarType.Float32) - eager.to(ScalarType.Float32)).abs().max())
                difference = d.item<float>();
            row("layer_forward_graph_replay", $"a replay of the layer's forward captured in a CUDA graph (no autograd, eval mode; max |replay − eager| {difference:g3})", chain, () =>
            {
                for (int i = 0; i < chain; i++) graph.Replay();
            }, null);
            row("layer_forward_eager_synced", "the eager forward (no autograd, eval mode), device drained after the chain: host and device time", chain, () =>
            {
                using var _ = no_grad();
                for (int i = 0; i < chain; i++) layer.forward(input).Dispose();
                sync();
            }, null);
            row("layer_forward_graph_synced", "the replayed forward, device drained after the chain: host and device time", chain, () =>
            {
                for (int i = 0; i < chain; i++) graph.Replay();
                sync();
            }, null);
            captured.Dispose();
        }
        finally
        {
            layer.train();
        }
    }
}

using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Native;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Execution;

/// <summary>
/// The resident trainer's decoder layers captured as CUDA graphs (<c>--cuda-graphs</c>, <see cref="Settings.TrainingSettings.CudaGraphs"/>):
/// per layer one graph of its forward (recording what its backward reads) and one of its backward (its parameters' gradients
/// packed in the gradient buffers' type, as <see cref="FlatParameters.TakePackedGradients"/> packs them, and its input's
/// gradient), for one micro-batch shape. A launch-bound step's host time is libtorch's dispatch and autograd's engine, about
/// 0.4 ms for a gpt2-xl layer's forward and 1–1.3 ms for its backward on an H100 (<c>aios bench-dispatch</c>); a replay costs
/// the host a few microseconds for the whole layer.
/// </summary>
/// <remarks>
/// <para>
/// The graphs run the eager code (<see cref="DecoderLayer.forward"/>, <see cref="FlatParameters.Backward"/>) once, at capture,
/// so their kernels are the eager ones; what changes is where the tensors live. Each graph reads and writes fixed addresses:
/// layer 0's input (<see cref="Input"/>, which the embedding's output is copied into), each layer's output (the next layer's
/// input, and the head's after the last), the gradient given to the last layer (<see cref="OutputGradient"/>, which the head's
/// is copied into), each layer's input gradient (the layer below's given gradient; layer 0's goes to the embedding), and each
/// layer's packed gradients (<see cref="PackedGradients"/>). What a forward keeps for its backward stays in the graphs' one shared
/// memory pool from a forward's replay until the backward's, as the eager step keeps it from forward to backward.
/// </para>
/// <para>
/// The graphs share one pool, so a block one capture freed may serve a later capture: they must be replayed in the order they
/// were captured — every layer's forward in order, then every backward in reverse — which is the step's order at every
/// micro-batch. Dropout draws from libtorch's generator, which a replay reads afresh (seed and offset) as it starts: re-seeded
/// before each layer's forward (<see cref="DropoutReplay"/>) a replay draws the eager pass's masks.
/// </para>
/// </remarks>
internal sealed class LayerGraphs : IDisposable
{
    private readonly CudaGraphCapture?[] _forward, _backward;
    private readonly Tensor?[] _inputs, _outputs, _inputGradients, _packed;
    private Tensor? _outputGradient;

    private LayerGraphs(int layers, long batch, long seq)
    {
        _forward = new CudaGraphCapture?[layers];
        _backward = new CudaGraphCapture?[layers];
        _inputs = new Tensor?[layers];
        _outputs = new Tensor?[layers];
        _inputGradients = new Tensor?[layers];
        _packed = new Tensor?[layers];
        Batch = batch;
        SeqLen = seq;
    }

    /// <summary>The micro-batch's sequences the graphs were captured for.</summary>
    public long Batch { get; }

    /// <summary>The sequence length the graphs were captured for.</summary>
    public long SeqLen { get; }

    /// <summary>Layer 0's input [batch, seq, hidden]: the embedding's output is copied here before layer 0's forward.</summary>
    public Tensor Input => _inputs[0]!;

    /// <summary>The last layer's output [batch, seq, hidden]: the final hidden states the head reads.</summary>
    public Tensor Output => _outputs[^1]!;

    /// <summary>The gradient given to the last layer's backward: the head's gradient of the final hidden states is copied here.</summary>
    public Tensor OutputGradient => _outputGradient!;

    /// <summary>Layer 0's input gradient after its backward: what the embedding's backward is given.</summary>
    public Tensor InputGradient => _inputGradients[0]!;

    /// <summary>Layer <paramref name="layer"/>'s parameters' gradients after its backward, packed in the layout's order.</summary>
    public Tensor PackedGradients(int layer) => _packed[layer]!;

    /// <summary>Replays layer <paramref name="layer"/>'s forward on the current stream.</summary>
    public void Forward(int layer)
    {
        _forward[layer]!.Replay();
        Replays++;
    }

    /// <summary>Replays layer <paramref name="layer"/>'s backward on the current stream.</summary>
    public void Backward(int layer)
    {
        _backward[layer]!.Replay();
        Replays++;
    }

    /// <summary>Graphs replayed so far (tests: the trainer took the graphs' path).</summary>
    public long Replays { get; private set; }

    /// <summary>
    /// Captures every layer of <paramref name="model"/> (on a CUDA device, in training mode) for micro-batches of
    /// <paramref name="batch"/> × <paramref name="seq"/> tokens, the packed gradients in <paramref name="gradientType"/>. First runs
    /// layer 0's forward and backward eagerly on the capture stream for one sequence (cuBLAS and autograd make their per-stream
    /// state on first use, which a capture may not), on zeros and without touching any parameter's gradient. The device is
    /// drained before capture.
    /// </summary>
    public static LayerGraphs Capture(GptModel model, long batch, long seq, ScalarType gradientType, Device device)
    {
        int layers = model.Layers.Count;
        long hidden = model.Spec.HiddenSize;
        ScalarType dtype = model.Unit(0).Flat.dtype;
        var graphs = new LayerGraphs(layers, batch, seq);
        try
        {
            using var scope = NewDisposeScope();
            int index = Math.Max(0, (int)device.index);
            // libtorch captures on the current device's current stream: make the layers' device current first (a single
            // process on cuda:1 otherwise leaves device 0 current, whose default stream a capture refuses, and that refusal
            // is a C++ exception that would end the process).
            Collectives.CudaDevice.MakeCurrent(index);
            using var side = CudaGraphCapture.SideStreamScope.Enter(index);
            WarmCaptureStream(model.Layers[0], model.Unit(0), seq, hidden, gradientType, device);
            CudaGraphCapture.PoolId pool = default;
            for (int i = 0; i < layers; i++)
            {
                Tensor input = i == 0 ? empty([batch, seq, hidden], dtype, device) : graphs._outputs[i - 1]!.detach();
                graphs._inputs[i] = input.requires_grad_(true).DetachFromDisposeScope();
                var graph = graphs._forward[i] = new CudaGraphCapture();
                int layer = i;
                graph.Capture(() => graphs._outputs[layer] = model.Layers[layer].forward(graphs._inputs[layer]!).DetachFromDisposeScope(), pool);
                if (i == 0) pool = graph.Pool;
            }
            graphs._outputGradient = empty([batch, seq, hidden], dtype, device).DetachFromDisposeScope();
            for (int i = layers - 1; i >= 0; i--)
            {
                Tensor given = i == layers - 1 ? graphs._outputGradient : graphs._inputGradients[i + 1]!;
                var graph = graphs._backward[i] = new CudaGraphCapture();
                int layer = i;
                graph.Capture(() =>
                {
                    using var inner = NewDisposeScope();
                    FlatParameters p = model.Unit(layer);
                    graphs._inputGradients[layer] = p.Backward(graphs._outputs[layer]!, graphs._inputs[layer]!, given).DetachFromDisposeScope();
                    graphs._packed[layer] = p.TakePackedGradients(gradientType).DetachFromDisposeScope();
                }, pool);
            }
            return graphs;
        }
        catch
        {
            graphs.Dispose();
            // A failed capture leaves nothing pending on the layers' parameters.
            for (int u = 0; u < layers; u++) model.Unit(u).ClearGradients();
            throw;
        }
    }

    /// <summary>
    /// Runs <paramref name="layer"/>'s forward and backward (<paramref name="unit"/>, its parameters) once eagerly on the current
    /// stream, on zeros of width <paramref name="hidden"/>, taking and dropping its gradients packed in <paramref name="gradientType"/>, then drains the device:
    /// cuBLAS and autograd make their per-stream state on first use, which a capture may not. One sequence is enough to make that
    /// state; its blocks stay cached for this stream alone, so no more than that. At the full length <paramref name="seq"/>, what a
    /// layer makes once per length (Llama's rotary tables) is made here, not in a capture.
    /// </summary>
    internal static void WarmCaptureStream(DecoderLayer layer, FlatParameters unit, long seq, long hidden, ScalarType gradientType, Device device)
    {
        using (var warm = NewDisposeScope())
        {
            Tensor x = zeros([1, seq, hidden], unit.Flat.dtype, device).requires_grad_(true);
            Tensor y = layer.forward(x);
            unit.Backward(y, x, ones_like(y));
            unit.TakePackedGradients(gradientType).Dispose();
        }
        cuda.synchronize();
    }

    /// <summary>Frees the fixed tensors, then the graphs (and with the last of them their memory pool).</summary>
    public void Dispose()
    {
        foreach (Tensor?[] set in new[] { _inputs, _outputs, _inputGradients, _packed })
            for (int i = 0; i < set.Length; i++)
            {
                set[i]?.Dispose();
                set[i] = null;
            }
        _outputGradient?.Dispose();
        _outputGradient = null;
        foreach (CudaGraphCapture?[] set in new[] { _forward, _backward })
            for (int i = 0; i < set.Length; i++)
            {
                set[i]?.Dispose();
                set[i] = null;
            }
    }
}

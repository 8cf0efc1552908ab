using AiOs.Planner.Engine.Data;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Execution;

/// <summary>The resident trainer's warm-up (<see cref="KernelWarmUp"/>).</summary>
public sealed partial class DeviceTrainer
{
    /// <inheritdoc/>
    /// <remarks>Layer 0 and the outer block run one micro-batch (weights only read; the gradients it leaves on their parameters are dropped, so the first step's backward does not add to them); the device AdamW and, on a GPU, the gradient norms run once on scratch tensors.</remarks>
    public double WarmUp(TokenBatch batch)
    {
        using (batch)
        {
            double seconds = KernelWarmUp.Passes(_model.Outer, _model.Layers[0], batch, _settings, _device, clearGradients: true);
            if (_adam is not null) seconds += KernelWarmUp.DeviceUpdate(_adam, _model.Unit(0).Flat.dtype, _device);
            if (_gradNorm == GradientNormPath.Fp32Reduction) seconds += KernelWarmUp.GradientNorms(_gradients[0].dtype, _device);
            if (_settings.CudaGraphs)
            {
                long start = System.Diagnostics.Stopwatch.GetTimestamp();
                EnsureGraphs(batch);
                seconds += System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds;
            }
            return seconds;
        }
    }

    /// <summary>
    /// Whether the layers' own gradient buffers go unused under CUDA graphs: at one micro-batch a step each is its graph's packed
    /// gradients (<see cref="EnsureGraphs"/>), and with fp32 sums the update reads the sums. Only fp32 accumulation copies into them.
    /// </summary>
    private bool GraphsReplaceLayerBuffers => _settings.CudaGraphs && (_settings.GradAccumulation == 1 || _accumulators is not null);

    /// <summary>Tests: layer graphs replayed so far (0 while the layers run eagerly).</summary>
    internal long GraphReplays => _graphs?.Replays ?? 0;

    /// <summary>The layers captured as CUDA graphs (<see cref="Settings.TrainingSettings.CudaGraphs"/>) once the first batch's shape is known; null: eager.</summary>
    private LayerGraphs? _graphs;

    /// <summary>
    /// Captures the layers for <paramref name="batch"/>'s shape at the warm-up (or the first step, if no warm-up ran); refuses a later
    /// micro-batch of another shape, which the graphs' fixed tensors cannot take. At one micro-batch a step without fp32 sums each
    /// layer's gradient buffer becomes its graph's packed gradients (<see cref="LandCaptured"/>).
    /// </summary>
    private void EnsureGraphs(TokenBatch batch)
    {
        long b = batch.Inputs.shape[0], t = batch.Inputs.shape[1];
        if (_graphs is not null)
        {
            if (_graphs.Batch != b || _graphs.SeqLen != t)
                throw new InvalidOperationException(
                    $"--cuda-graphs captured the layers for micro-batches of {_graphs.Batch} × {_graphs.SeqLen} tokens and this one is {b} × {t}: " +
                    "every micro-batch must have the same shape; drop --cuda-graphs for this data.");
            return;
        }
        _graphs = LayerGraphs.Capture(_model, b, t, _gradients[0].dtype, _device);
        if (_settings.GradAccumulation == 1)
            for (int i = 0; i < _spec.NumLayers; i++)
            {
                _gradients[i].Dispose();
                _gradients[i] = _graphs.PackedGradients(i).alias().DetachFromDisposeScope();
            }
        DeviceMemory?.Note("the layers' CUDA graphs");
    }
}

using AiOs.Planner.Engine.Data;

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
            return seconds;
        }
    }
}

using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Engine.Execution;

/// <summary>The layer-by-layer trainer's warm-up (<see cref="KernelWarmUp"/>).</summary>
public sealed partial class LayerwiseTrainer
{
    /// <inheritdoc/>
    /// <remarks>
    /// Layer 0's first device slot (or its resident module) and the outer block run one micro-batch; their weights are only
    /// read (a slot not yet filled holds whatever it holds: the kernels, not the values, are what is warmed). The CPU update
    /// runs on scratch arrays with the kernel the run's updates use (a new instance of the same type: what is warmed is the
    /// compiled code and the worker threads).
    /// </remarks>
    public double WarmUp(TokenBatch batch)
    {
        using (batch)
        {
            var outer = (OuterBlock)_params.ModuleIn(_spec.NumLayers, 0);
            var layer = (DecoderLayer)_params.ModuleIn(0, 0);
            double seconds = KernelWarmUp.Passes(outer, layer, batch, _settings, _device, clearGradients: true);
            if (_settings.OptimizerState == AiOs.Planner.Optim.OptimizerStateFormat.Fp32)
                seconds += KernelWarmUp.CpuUpdate(EngineSettings.Optimizer(_options), bf16Copy: _settings.Precision == Precision.Bf16);
            // Where the gradient store takes each unit's Σg² on the device (copy streams, one micro-batch a step).
            if (_grads.TakesDeviceNorms) seconds += KernelWarmUp.GradientNorms(layer.Parameters.Flat.dtype, _device);
            return seconds;
        }
    }
}

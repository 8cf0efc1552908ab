using System.Diagnostics;
using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Optim;
using AiOs.Planner.Settings;
using TorchSharp;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Execution;

/// <summary>
/// Runs every kind of kernel a training step uses once, at the step's shapes, before the first step, so the first step
/// runs at the speed of the others (issue 14's first-step ratio). On the H100 the 7B's first step took 2.9× a later one:
/// the extra 4.2 s was each kernel kind's first use (CUDA loads a kernel's module on its first launch, cuBLAS picks its
/// algorithms per shape): the first layer forward 1.5 s, the first backward 1.2 s, the head about 1 s, the first CPU
/// update 0.36 s (docs/validation/h100-2026-12-05-session6.md). The warm-up moves that time into the start-up, where
/// <c>startup_seconds</c> counts it.
/// </summary>
/// <remarks>
/// It runs on the trainer's own modules (one layer slot and the outer block), so every tensor it allocates has a size the
/// step allocates again: the caching allocator reuses those blocks, and the run's device peak does not grow. It changes no
/// state a step reads: weights are only read, the gradients it makes are cleared, dropout draws are re-seeded before every
/// unit of a step (<see cref="DropoutReplay"/>), and the CPU update runs on scratch arrays of its own.
/// </remarks>
internal static class KernelWarmUp
{
    /// <summary>Elements of the scratch CPU update: enough that every path of the vectorised, parallel kernel runs.</summary>
    private const int CpuUpdateElements = 1 << 20;

    /// <summary>Whether the run warms up (on unless <c>AIOS_WARMUP=0</c>, which the A/B of the first-step ratio uses).</summary>
    public static bool Enabled => Environment.GetEnvironmentVariable("AIOS_WARMUP") != "0";

    /// <summary>
    /// The passes of one micro-batch through <paramref name="layer"/> and <paramref name="outer"/>: the embedding, the layer
    /// without autograd (the layer-by-layer forward and checkpointed forward) and with it (recompute, resident forward), the
    /// head and loss, and the backward of all three. Returns the seconds it took (synchronised on a GPU).
    /// </summary>
    /// <param name="outer">The outer block the step's embedding and head run in.</param>
    /// <param name="layer">A decoder layer module of the step (its weights are only read).</param>
    /// <param name="batch">A micro-batch of the step's shape.</param>
    /// <param name="settings">The run's head, accumulation and precision.</param>
    /// <param name="device">Where the step runs.</param>
    /// <param name="clearGradients">
    /// Drop the gradients the backward made (every trainer does: a gradient left on a parameter would be added to by the first
    /// step's backward).
    /// </param>
    public static double Passes(OuterBlock outer, DecoderLayer layer, TokenBatch batch, TrainingSettings settings, Device device, bool clearGradients)
    {
        long t0 = Stopwatch.GetTimestamp();
        using (var scope = NewDisposeScope())
        {
            Tensor inputs = batch.Inputs.to(device), targets = batch.Targets.to(device);
            Tensor embedded = outer.forward(inputs);
            using (no_grad()) layer.forward(embedded.detach());
            Tensor x = embedded.detach().requires_grad_(true);
            Tensor y = layer.forward(x);
            Tensor hidden = y.detach().requires_grad_(true);
            Tensor loss = outer.Loss(hidden, targets, settings.GradAccumulation, settings.HeadLoss);
            loss.item<float>();
            loss.backward();
            y.backward([hidden.grad!]);
            embedded.backward([x.grad!]);
        }
        if (clearGradients)
        {
            outer.Parameters.ClearGradients();
            layer.Parameters.ClearGradients();
        }
        if (device.type == DeviceType.CUDA) cuda.synchronize();
        return Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }

    /// <summary>One CPU update on scratch arrays in the form the run's updates take (with the bf16 copy in bf16 training).</summary>
    public static double CpuUpdate(IOptimizerStep step, bool bf16Copy)
    {
        long t0 = Stopwatch.GetTimestamp();
        var master = new float[CpuUpdateElements];
        var gradient = new float[CpuUpdateElements];
        var m = new float[CpuUpdateElements];
        var v = new float[CpuUpdateElements];
        Array.Fill(gradient, 1e-3f);
        if (bf16Copy) step.Update(master, gradient, m, v, 1, 1f, new ushort[CpuUpdateElements]);
        else step.Update(master, gradient, m, v, 1, 1f);
        return Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }

    /// <summary>
    /// On a GPU, one Σg² of a scratch gradient by the path the updates take (<see cref="Execution.GradientNorms.UnitSum"/>): its
    /// kernel is compiled and checked at first use, a few hundred milliseconds that would otherwise fall in the first step.
    /// </summary>
    public static double GradientNorms(ScalarType dtype, Device device)
    {
        if (device.type != DeviceType.CUDA) return 0;
        long t0 = Stopwatch.GetTimestamp();
        // A Scalar this frame holds across the call (Native.KeptScalars says why).
        using Scalar value = 1e-3;
        using (var scope = NewDisposeScope())
        using (no_grad())
            Execution.GradientNorms.UnitSum(full([CpuUpdateElements], value, dtype, device)).item<double>();
        return Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }

    /// <summary>One device AdamW update on scratch tensors (fp32 master and moments, gradient and working copy in <paramref name="dtype"/>).</summary>
    public static double DeviceUpdate(IDeviceAdamW adam, ScalarType dtype, Device device)
    {
        long t0 = Stopwatch.GetTimestamp();
        using (var scope = NewDisposeScope())
        {
            var master = zeros([CpuUpdateElements], ScalarType.Float32, device);
            var gradient = full([CpuUpdateElements], 1e-3, dtype, device);
            var m = zeros([CpuUpdateElements], ScalarType.Float32, device);
            var v = zeros([CpuUpdateElements], ScalarType.Float32, device);
            Tensor? working = dtype == ScalarType.Float32 ? null : zeros([CpuUpdateElements], dtype, device);
            adam.Update(master, gradient, m, v, working, 1, 1f);
        }
        if (device.type == DeviceType.CUDA) cuda.synchronize();
        return Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }
}

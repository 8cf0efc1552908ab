using AiOs.Planner.Engine.Native;
using AiOs.Planner.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Optim;

/// <summary>
/// AdamW with block-wise 8-bit moments (<see cref="DeviceEightBitMoments"/>) on one unit where it lives, for resident runs
/// with <c>--optimizer-state 8bit</c>: fp32 master weights, m and v decoded per block, updated in fp32, requantised with the
/// block's new scales. The arithmetic is <see cref="BlockwiseAdam"/>'s (the offloaded 8-bit optimizer's), so both engines
/// make the same codes, scales and weights from the same gradients.
/// </summary>
public interface IDeviceAdamW8bit
{
    /// <summary>Short name for run records (<c>fused-cuda-8bit</c>, <c>blockwise-cpu-8bit</c>).</summary>
    string Name { get; }

    /// <summary>
    /// Applies update <paramref name="step"/> to fp32 <paramref name="master"/> with <paramref name="gradient"/> × <paramref name="gradScale"/>,
    /// re-encodes <paramref name="moments"/>, then writes the result into <paramref name="working"/> unless it is null (fp32 training).
    /// A block whose new second moment is not finite is left as it was (the trainer refuses such steps before they get here).
    /// </summary>
    void Update(Tensor master, Tensor gradient, DeviceEightBitMoments moments, Tensor? working, int step, float gradScale);
}

/// <summary>
/// The 8-bit update on a CPU device: <see cref="BlockwiseAdam"/> (AVX2, all cores) straight on the tensors' host memory, tensor
/// by tensor as the moments' blocks are laid out. This is the offloaded CPU optimizer's kernel, so the results are its own.
/// </summary>
public sealed unsafe class HostBlockwiseAdamW8bit(AdamWOptions options, int? threads = null) : IDeviceAdamW8bit
{
    private readonly int _threads = Math.Max(1, threads ?? Environment.ProcessorCount);

    public string Name => "blockwise-cpu-8bit";

    public void Update(Tensor master, Tensor gradient, DeviceEightBitMoments moments, Tensor? working, int step, float gradScale)
    {
        ArgumentNullException.ThrowIfNull(moments);
        long n = moments.Elements;
        if (master.device_type != DeviceType.CPU || master.dtype != ScalarType.Float32 || master.numel() != n || !master.is_contiguous())
            throw new ArgumentException($"master must be a contiguous CPU fp32 tensor of {n} elements.", nameof(master));
        if (gradient.numel() != n) throw new ArgumentException($"The gradient has {gradient.numel()} elements; the unit has {n}.", nameof(gradient));
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        Tensor g = gradient.dtype == ScalarType.Float32 && gradient.is_contiguous() ? gradient : gradient.to(ScalarType.Float32).contiguous();
        AdamHyperParameters hp = options.HyperParametersAt(step);
        float* p = (float*)CudaDriver.DataOf(master), gp = (float*)CudaDriver.DataOf(g);
        byte* mc = (byte*)CudaDriver.DataOf(moments.MCodes), vc = (byte*)CudaDriver.DataOf(moments.VCodes);
        float* ms = (float*)CudaDriver.DataOf(moments.MScales), vs = (float*)CudaDriver.DataOf(moments.VScales);
        // A bf16 working copy is written inside the update's pass (BlockwiseAdam rounds as PyTorch's cast does, the pass the
        // profile's 8-bit rate was measured with); an fp16 one is cast from the master after it.
        bool inPass = working is { dtype: ScalarType.BFloat16, device_type: DeviceType.CPU } && working.is_contiguous() && working.numel() == n;
        ushort* h = inPass ? (ushort*)CudaDriver.DataOf(working!) : null;
        foreach (DeviceEightBitMoments.Piece piece in moments.Pieces)
            BlockwiseAdam.Step(p + piece.Start, gp + piece.Start, mc + piece.Start, ms + piece.FirstBlock, vc + piece.Start, vs + piece.FirstBlock,
                h == null ? null : h + piece.Start, piece.Length, step, hp, gradScale, _threads);
        if (!inPass) working?.copy_(master);
    }
}

/// <summary>Picks the 8-bit device AdamW: the host kernel on a CPU device, the fused NVRTC kernel on CUDA, and refuses otherwise.</summary>
public static class DeviceAdamW8bit
{
    /// <summary>The 8-bit update for <paramref name="device"/>.</summary>
    /// <exception cref="InvalidOperationException">A CUDA device where the fused kernel cannot be built, or another device type (the message names <c>--optimizer-state fp32</c>).</exception>
    public static IDeviceAdamW8bit For(Device device, AdamWOptions options) => device.type switch
    {
        DeviceType.CPU => new HostBlockwiseAdamW8bit(options),
        DeviceType.CUDA => Fused(() => FusedCudaAdamW8bit.IsAvailable
            ? new FusedCudaAdamW8bit(options, device)
            : throw new InvalidOperationException("NVRTC (libnvrtc.so) was not found; set AIOS_NVRTC to its path")),
        _ => throw new InvalidOperationException($"8-bit optimizer state in a resident run needs a CPU or CUDA device, not {device.type}: use --optimizer-state fp32, or offload the optimizer (--offload-optimizer cpu) to run 8-bit state in the CPU optimizer."),
    };

    /// <summary>Builds the fused kernel, turning a failure into a refusal that names the fix (there is no unfused 8-bit update on a GPU).</summary>
    internal static IDeviceAdamW8bit Fused(Func<IDeviceAdamW8bit> build)
    {
        try
        {
            return build();
        }
        // The driver library itself missing (no libcuda) surfaces as a DllNotFoundException, not the driver's own error.
        catch (Exception e) when (e is InvalidOperationException or DllNotFoundException or EntryPointNotFoundException)
        {
            throw new InvalidOperationException(
                $"--optimizer-state 8bit on a CUDA device needs the fused 8-bit AdamW kernel, which could not be built ({e.Message}). " +
                "Use --optimizer-state fp32, or offload the optimizer (--offload-optimizer cpu) to run 8-bit state in the CPU optimizer.", e);
        }
    }
}

using System.Runtime.InteropServices;
using AiOs.Planner.Engine.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Optim;

/// <summary>
/// AdamW on one unit's flat tensors where they live (the device), for runs that keep the optimizer there
/// (<c>offload_optimizer: none</c>). Same meaning and operation order as <see cref="SpanAdamW"/> and
/// torch.optim.AdamW: p ← p(1 − lr·wd); m ← lerp(m, g, 1 − β1); v ← β2·v + (1 − β2)g²;
/// p ← p + (−lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε).
/// </summary>
public interface IDeviceAdamW
{
    /// <summary>Short name for run records (<c>fused-cuda</c>, <c>torch-ops</c>).</summary>
    string Name { get; }

    /// <summary>
    /// Applies update <paramref name="step"/> to fp32 <paramref name="master"/> with <paramref name="gradient"/>
    /// (fp32 or bf16) × <paramref name="gradScale"/>, then writes the result into <paramref name="working"/>
    /// (the training-precision parameters) unless it is null (fp32 training: the master is the parameter).
    /// </summary>
    void Update(Tensor master, Tensor gradient, Tensor expAvg, Tensor expAvgSq, Tensor? working, int step, float gradScale);
}

/// <summary>Bias corrections and step size of update <c>t</c>, computed in double as PyTorch does with Python floats.</summary>
internal readonly record struct AdamCoefficients(double Decay, double OneMinusBeta1, double OneMinusBeta2, double StepSize, double Bc2Sqrt)
{
    public static AdamCoefficients Of(AdamWOptions o, int step)
    {
        if (step < 1) throw new ArgumentOutOfRangeException(nameof(step), "Steps count from 1.");
        double bc1 = 1 - Math.Pow(o.Beta1, step), bc2 = 1 - Math.Pow(o.Beta2, step), lr = o.LearningRateAt(step);
        return new(1 - lr * o.WeightDecay, 1 - o.Beta1, 1 - o.Beta2, lr / bc1, Math.Sqrt(bc2));
    }
}

/// <summary>
/// AdamW as a handful of TorchSharp operations per unit (torch.optim.AdamW's single-tensor path). Runs on any
/// device; on a GPU it moves about three times the bytes of the fused kernel, so it is the fallback there.
/// </summary>
public sealed class TorchOpsAdamW(AdamWOptions options) : IDeviceAdamW
{
    public string Name => "torch-ops";

    public void Update(Tensor master, Tensor gradient, Tensor expAvg, Tensor expAvgSq, Tensor? working, int step, float gradScale)
    {
        var k = AdamCoefficients.Of(options, step);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        // Every coefficient is a Scalar this frame holds until its call returns (Native.KeptScalars says why).
        using Scalar scale = gradScale, decay = k.Decay, beta2 = options.Beta2, oneMinusBeta2 = k.OneMinusBeta2, bc2Sqrt = k.Bc2Sqrt,
            epsilon = options.Epsilon, minusStepSize = -k.StepSize;
        Tensor g = gradient.dtype == ScalarType.Float32 ? gradient : gradient.to(ScalarType.Float32);
        if (gradScale != 1f) g = g.mul(scale);
        master.mul_(decay);
        expAvg.lerp_(g, tensor((float)k.OneMinusBeta1, ScalarType.Float32, master.device));
        expAvgSq.mul_(beta2).addcmul_(g, g, oneMinusBeta2);
        Tensor denom = expAvgSq.sqrt().div_(bc2Sqrt).add_(epsilon);
        master.addcdiv_(expAvg, denom, minusStepSize);
        working?.copy_(master);
    }
}

/// <summary>
/// AdamW as one CUDA kernel per unit, compiled at first use with NVRTC for the GPU present and launched through
/// the driver API on the default stream (after the backward kernels that produced the gradient). It reads the
/// gradient (bf16 or fp32), master weights and both moments once and writes them and the bf16 working copy
/// once: 28 bytes per parameter in bf16 training, as PyTorch's fused AdamW moves for fp32 parameters.
/// IEEE division and square root, no fused multiply-add, so the results follow <see cref="TorchOpsAdamW"/>.
/// </summary>
public sealed unsafe class FusedCudaAdamW : IDeviceAdamW
{
    internal const string Source = DeviceKernels.Bf16Conversions + """
        __device__ __forceinline__ void adamw_element(float& pi, float& mi, float& vi, float g, float decay, float one_minus_beta1,
            float beta2, float one_minus_beta2, float neg_step_size, float bc2_sqrt, float eps, float grad_scale)
        {
            if (grad_scale != 1.0f) g = g * grad_scale;
            pi = pi * decay;
            mi = mi + one_minus_beta1 * (g - mi);
            vi = beta2 * vi + one_minus_beta2 * (g * g);
            float denom = sqrtf(vi) / bc2_sqrt + eps;
            pi = pi + neg_step_size * (mi / denom);
        }

        // Elements first, first + stride, … below n, one at a time: the whole of aios_adamw, and aios_adamw4's tail.
        __device__ __forceinline__ void adamw_strided(float* __restrict__ p, const void* __restrict__ grad, int grad_bf16,
            float* __restrict__ m, float* __restrict__ v, unsigned short* __restrict__ working, long long first, long long stride,
            long long n, float decay, float one_minus_beta1, float beta2, float one_minus_beta2, float neg_step_size,
            float bc2_sqrt, float eps, float grad_scale)
        {
            for (long long i = first; i < n; i += stride)
            {
                float g = grad_bf16 ? bf16_to_float(((const unsigned short*)grad)[i]) : ((const float*)grad)[i];
                float pi = p[i], mi = m[i], vi = v[i];
                adamw_element(pi, mi, vi, g, decay, one_minus_beta1, beta2, one_minus_beta2, neg_step_size, bc2_sqrt, eps, grad_scale);
                p[i] = pi; m[i] = mi; v[i] = vi;
                if (working) working[i] = float_to_bf16(pi);
            }
        }

        extern "C" __global__ void aios_adamw(float* __restrict__ p, const void* __restrict__ grad, int grad_bf16,
            float* __restrict__ m, float* __restrict__ v, unsigned short* __restrict__ working, long long n,
            float decay, float one_minus_beta1, float beta2, float one_minus_beta2, float neg_step_size, float bc2_sqrt,
            float eps, float grad_scale)
        {
            adamw_strided(p, grad, grad_bf16, m, v, working, (long long)blockIdx.x * blockDim.x + threadIdx.x,
                (long long)blockDim.x * gridDim.x, n, decay, one_minus_beta1, beta2, one_minus_beta2, neg_step_size, bc2_sqrt, eps, grad_scale);
        }

        // Four elements a thread per pass, each array read and written in 16-byte (fp32) or 8-byte (bf16) pieces; the last
        // n mod 4 elements one at a time. The same operations per element as aios_adamw, so the same bits. The caller checks
        // the alignment (p, m, v and an fp32 gradient on 16 bytes; a bf16 gradient and the working copy on 8).
        extern "C" __global__ void aios_adamw4(float* __restrict__ p, const void* __restrict__ grad, int grad_bf16,
            float* __restrict__ m, float* __restrict__ v, unsigned short* __restrict__ working, long long n,
            float decay, float one_minus_beta1, float beta2, float one_minus_beta2, float neg_step_size, float bc2_sqrt,
            float eps, float grad_scale)
        {
            long long stride = (long long)blockDim.x * gridDim.x;
            long long first = (long long)blockIdx.x * blockDim.x + threadIdx.x;
            long long quads = n >> 2;
            for (long long q = first; q < quads; q += stride)
            {
                float4 P = ((float4*)p)[q], M = ((float4*)m)[q], V = ((float4*)v)[q];
                float4 G;
                if (grad_bf16)
                {
                    uint2 raw = ((const uint2*)grad)[q];
                    G.x = bf16_to_float((unsigned short)(raw.x & 0xffffu)); G.y = bf16_to_float((unsigned short)(raw.x >> 16));
                    G.z = bf16_to_float((unsigned short)(raw.y & 0xffffu)); G.w = bf16_to_float((unsigned short)(raw.y >> 16));
                }
                else G = ((const float4*)grad)[q];
                adamw_element(P.x, M.x, V.x, G.x, decay, one_minus_beta1, beta2, one_minus_beta2, neg_step_size, bc2_sqrt, eps, grad_scale);
                adamw_element(P.y, M.y, V.y, G.y, decay, one_minus_beta1, beta2, one_minus_beta2, neg_step_size, bc2_sqrt, eps, grad_scale);
                adamw_element(P.z, M.z, V.z, G.z, decay, one_minus_beta1, beta2, one_minus_beta2, neg_step_size, bc2_sqrt, eps, grad_scale);
                adamw_element(P.w, M.w, V.w, G.w, decay, one_minus_beta1, beta2, one_minus_beta2, neg_step_size, bc2_sqrt, eps, grad_scale);
                ((float4*)p)[q] = P; ((float4*)m)[q] = M; ((float4*)v)[q] = V;
                if (working)
                {
                    uint2 out;
                    out.x = (unsigned int)float_to_bf16(P.x) | ((unsigned int)float_to_bf16(P.y) << 16);
                    out.y = (unsigned int)float_to_bf16(P.z) | ((unsigned int)float_to_bf16(P.w) << 16);
                    ((uint2*)working)[q] = out;
                }
            }
            adamw_strided(p, grad, grad_bf16, m, v, working, (quads << 2) + first, stride, n, decay, one_minus_beta1, beta2,
                one_minus_beta2, neg_step_size, bc2_sqrt, eps, grad_scale);
        }
        """;

    private static readonly Lock Gate = new();
    private static nint _kernel, _kernel4;
    private static int _blocks;
    private readonly AdamWOptions _options;

    /// <summary>Compiles (once per process) and loads the kernel for the current CUDA device.</summary>
    /// <exception cref="InvalidOperationException">No NVRTC, or the compilation or load failed.</exception>
    public FusedCudaAdamW(AdamWOptions options)
    {
        _options = options;
        lock (Gate)
        {
            if (_kernel != 0) return;
            var (major, minor, sms) = CudaDriver.DeviceInfo();
            byte[] ptx = Nvrtc.CompileToPtx(Source, "aios_adamw.cu", major, minor, "--fmad=false");
            // Both loaded before either is published: a later constructor returns at a set _kernel.
            nint one = CudaDriver.LoadKernel(ptx, "aios_adamw"), four = CudaDriver.LoadKernel(ptx, "aios_adamw4");
            _blocks = sms * 8;
            _kernel4 = four;
            _kernel = one;
        }
    }

    /// <summary>Whether the fused kernel can be built here (NVRTC present); the device must still be CUDA.</summary>
    public static bool IsAvailable => Nvrtc.IsAvailable;

    public string Name => "fused-cuda";

    public void Update(Tensor master, Tensor gradient, Tensor expAvg, Tensor expAvgSq, Tensor? working, int step, float gradScale)
    {
        long n = master.numel();
        DeviceKernels.Require(master, ScalarType.Float32, n, nameof(master));
        DeviceKernels.Require(expAvg, ScalarType.Float32, n, nameof(expAvg));
        DeviceKernels.Require(expAvgSq, ScalarType.Float32, n, nameof(expAvgSq));
        if (gradient.dtype is not (ScalarType.Float32 or ScalarType.BFloat16)) throw new ArgumentException("The gradient must be fp32 or bf16.", nameof(gradient));
        DeviceKernels.Require(gradient, gradient.dtype, n, nameof(gradient));
        if (working is not null) DeviceKernels.Require(working, ScalarType.BFloat16, n, nameof(working));

        var k = AdamCoefficients.Of(_options, step);
        nint p = DataOf(master), g = DataOf(gradient), m = DataOf(expAvg), v = DataOf(expAvgSq), w = working is null ? 0 : DataOf(working);
        int gradBf16 = gradient.dtype == ScalarType.BFloat16 ? 1 : 0;
        float decay = (float)k.Decay, b1 = (float)k.OneMinusBeta1, beta2 = (float)_options.Beta2, b2 = (float)k.OneMinusBeta2;
        float negStep = (float)-k.StepSize, bc2 = (float)k.Bc2Sqrt, eps = (float)_options.Epsilon, scale = gradScale;
        void** args = stackalloc void*[15];
        args[0] = &p; args[1] = &g; args[2] = &gradBf16; args[3] = &m; args[4] = &v; args[5] = &w; args[6] = &n;
        args[7] = &decay; args[8] = &b1; args[9] = &beta2; args[10] = &b2; args[11] = &negStep; args[12] = &bc2; args[13] = &eps; args[14] = &scale;
        bool quads = Vectorised && Aligned(p, m, v, g, w, gradBf16 == 1);
        long threads = quads ? (n + 3) / 4 : n;
        int blocks = (int)Math.Min(_blocks, Math.Max(1, (threads + 255) / 256));
        CudaDriver.Launch(quads ? _kernel4 : _kernel, blocks, 256, args);
    }

    /// <summary>
    /// Whether the four-wide kernel can take these addresses: master and moments (and an fp32 gradient) on 16 bytes, a bf16
    /// gradient and the working copy on 8. A unit's flat buffers start where the caching allocator put them (512-byte
    /// blocks); a view at an odd offset takes the one-wide kernel.
    /// </summary>
    internal static bool Aligned(nint p, nint m, nint v, nint g, nint w, bool gradBf16) =>
        (p | m | v) % 16 == 0 && g % (gradBf16 ? 8 : 16) == 0 && w % 8 == 0;

    /// <summary>
    /// <c>AIOS_ADAMW_VECTOR=0</c>: one element a thread, as before 2026-12-07 (an A/B; the same bits). The four-wide kernel
    /// reads and writes in 16- and 8-byte pieces: on an H100 the one-wide kernel moved gpt2-xl's 28 bytes a parameter at
    /// about 73% of the memory's rate (351 µs a layer).
    /// </summary>
    private static readonly bool Vectorised = Environment.GetEnvironmentVariable("AIOS_ADAMW_VECTOR") != "0";

    private static nint DataOf(Tensor t) => CudaDriver.DataOf(t);
}

/// <summary>
/// AdamW on CPU tensors through the engine's vectorised <see cref="Planner.Optim.CpuAdam"/> (<see cref="CpuAdamStep"/>), read and written
/// where they lie: one pass over master, gradient (fp32, or bf16 widened as it is read), both moments and the bf16 working
/// copy, and nothing allocated. <see cref="TorchOpsAdamW"/> made an fp32 gradient and a denominator per unit (8 bytes per
/// parameter), which the C heap's reuse (<see cref="Native.HostHeap"/>) kept and fragmented: gpt2's resident CPU run grew
/// 0.9 GiB over its first 20 steps. Same update as torch.optim.AdamW to rounding (the span kernels' tests).
/// </summary>
public sealed class HostAdamW(AdamWOptions options) : IDeviceAdamW
{
    private readonly CpuAdamStep _step = new(options);

    public string Name => "cpu-adam";

    /// <summary>Whether <see cref="Update"/> takes these tensors: contiguous fp32 state on the CPU, an fp32 or bf16 gradient, a bf16 working copy or none.</summary>
    public static bool Takes(Tensor master, Tensor gradient, Tensor? working) =>
        master.device_type == DeviceType.CPU && master.dtype == ScalarType.Float32 && master.is_contiguous()
        && gradient.device_type == DeviceType.CPU && gradient.dtype is ScalarType.Float32 or ScalarType.BFloat16 && gradient.is_contiguous()
        && (working is null || working.dtype == ScalarType.BFloat16 && working.is_contiguous() && working.device_type == DeviceType.CPU)
        && master.numel() <= int.MaxValue;

    public void Update(Tensor master, Tensor gradient, Tensor expAvg, Tensor expAvgSq, Tensor? working, int step, float gradScale)
    {
        if (!Takes(master, gradient, working) || !expAvg.is_contiguous() || !expAvgSq.is_contiguous())
            throw new ArgumentException("HostAdamW takes contiguous CPU tensors: fp32 master and moments, an fp32 or bf16 gradient, a bf16 working copy or none.");
        long n = master.numel();
        if (gradient.numel() != n || expAvg.numel() != n || expAvgSq.numel() != n || working is not null && working.numel() != n)
            throw new ArgumentException("The master, gradient, moments and working copy must have the same number of elements.");
        // TorchSharp's bytes of a CPU tensor are its memory itself, as the engine's other host tensors are read.
        Span<float> p = MemoryMarshal.Cast<byte, float>(master.bytes), m = MemoryMarshal.Cast<byte, float>(expAvg.bytes), v = MemoryMarshal.Cast<byte, float>(expAvgSq.bytes);
        Span<ushort> bf16 = working is null ? Span<ushort>.Empty : MemoryMarshal.Cast<byte, ushort>(working.bytes);
        if (gradient.dtype == ScalarType.BFloat16)
            _step.UpdateBf16Gradients(p, MemoryMarshal.Cast<byte, ushort>(gradient.bytes), m, v, step, gradScale, bf16);
        else
            _step.Update(p, MemoryMarshal.Cast<byte, float>(gradient.bytes), m, v, step, gradScale, bf16);
    }
}

/// <summary>
/// Picks the device AdamW: the fused kernel on a CUDA device where NVRTC is found, <see cref="HostAdamW"/> on the CPU for
/// bf16 and fp32 training, TorchSharp operations elsewhere.
/// </summary>
public static class DeviceAdamW
{
    /// <summary>The update for <paramref name="device"/>; <paramref name="preferFused"/> false forces the TorchSharp operations.</summary>
    public static IDeviceAdamW For(Device device, AdamWOptions options, bool preferFused = true)
    {
        if (preferFused && device.type == DeviceType.CPU) return new HostAdamW(options);
        if (preferFused && device.type == DeviceType.CUDA && FusedCudaAdamW.IsAvailable)
        {
            try
            {
                return new FusedCudaAdamW(options);
            }
            catch (InvalidOperationException e)
            {
                Console.Error.WriteLine($"warning: the fused CUDA AdamW is unavailable ({e.Message}); using TorchSharp operations, which move about 3x the bytes.");
            }
        }
        return new TorchOpsAdamW(options);
    }
}

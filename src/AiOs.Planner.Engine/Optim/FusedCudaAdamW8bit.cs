using AiOs.Planner.Engine.Native;
using AiOs.Planner.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Optim;

/// <summary>
/// AdamW with block-wise 8-bit moments as one CUDA kernel per unit, compiled at first use with NVRTC and launched through the
/// driver API on the default stream, like <see cref="FusedCudaAdamW"/>. One thread block of 256 threads per quantisation
/// block of 2,048 values (8 per thread, strided so loads coalesce): decode m and v (map tables in shared memory), AdamW in
/// fp32, block extremes by warp shuffles, then the parameter update, the new scales and the codes, rounded
/// stochastically by arithmetic with a counter-based hash (lowbias32 of step,
/// the block's seed from its place in its tensor, and the index in the block), so resident and offloaded 8-bit runs make the same codes. It moves about 12 bytes per parameter (bf16 gradient and working copy, fp32 master, two codes)
/// against the fp32 kernel's 28. IEEE division and square root and no fused multiply-add but the explicit <c>fmaf</c>s of the rounding, so it computes what
/// <see cref="EightBitAdamKernel.UpdateBlock"/> (the tested scalar twin) and <see cref="BlockwiseAdam"/> compute.
/// </summary>
public sealed unsafe class FusedCudaAdamW8bit : IDeviceAdamW8bit
{
    /// <summary>The kernel, line for line <see cref="EightBitAdamKernel.UpdateBlock"/> and <see cref="EightBitAdamKernel.QuantizeStochastic"/>.</summary>
    internal const string Source = DeviceKernels.Bf16Conversions + """
        #define AIOS_BLOCK 2048
        #define AIOS_THREADS 256
        #define AIOS_PER (AIOS_BLOCK / AIOS_THREADS)
        // A code rounded stochastically (EightBitAdamKernel.QuantizeStochastic): c = [region upper 8 | slope | intercept | high | lower | upper | base].
        __device__ __forceinline__ unsigned char quantize_stochastic(float y, float u, const float* c, int is_signed)
        {
            float a = fabsf(y);
            a = a < 1.0f ? a : 1.0f; // NaN too
            int d = 0;
            for (int e = 0; e < 7; e++) d += a > c[e] ? 1 : 0;
            const float q = fmaf(a, c[8 + d], c[16 + d]);
            const float below = q < 0.0f ? q : 0.0f, beyond = q - c[24 + d], above = beyond > 0.0f ? beyond : 0.0f;
            const float f = fmaf(c[32 + d], below, fmaf(c[40 + d], above, q));
            const int r = max((int)c[48 + d] + (int)floorf(f + u), 0);
            if (!is_signed) return (unsigned char)min(r, 255);
            return y < 0.0f ? (unsigned char)(127 - min(r, 127)) : (unsigned char)(127 + min(r, 128));
        }
        // lowbias32 (StochasticRounding.Mix): counter-based, so codes depend on (step, block seed, index in block) only.
        __device__ __forceinline__ unsigned int aios_mix(unsigned int x)
        {
            x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; x ^= x >> 16;
            return x;
        }

        extern "C" __global__ void __launch_bounds__(AIOS_THREADS) aios_adamw8bit(float* __restrict__ p, const void* __restrict__ grad, int grad_bf16,
            unsigned char* __restrict__ mc, float* __restrict__ ms, unsigned char* __restrict__ vc, float* __restrict__ vs,
            const long long* __restrict__ block_starts, const float* __restrict__ table, unsigned short* __restrict__ working,
            float decay, float beta1, float one_minus_beta1, float beta2, float one_minus_beta2, float step_size, float inv_sqrt_bias2,
            float eps, float grad_scale, int step, const unsigned int* __restrict__ block_seeds)
        {
            // [signed values | unsigned values | signed stochastic-rounding constants | unsigned ones]
            __shared__ float s_table[1024];
            __shared__ float s_mmax[AIOS_THREADS / 32], s_mmin[AIOS_THREADS / 32], s_vmax[AIOS_THREADS / 32];
            __shared__ int s_bad[AIOS_THREADS / 32];
            for (int i = threadIdx.x; i < 1024; i += AIOS_THREADS) s_table[i] = table[i];
            const long long b = blockIdx.x;
            const long long start = block_starts[b];
            const int n = (int)(block_starts[b + 1] - start);
            const float m_scale = ms[b], v_scale = vs[b];
            const float inf = __int_as_float(0x7f800000);
            __syncthreads();

            float m1[AIOS_PER], v1[AIOS_PER];
            float mmax = 0.0f, mmin = 0.0f, vmax = 0.0f;
            int bad = 0;
            #pragma unroll
            for (int k = 0; k < AIOS_PER; k++)
            {
                const int i = threadIdx.x + k * AIOS_THREADS;
                m1[k] = 0.0f; v1[k] = 0.0f;
                if (i < n)
                {
                    const long long at = start + i;
                    const float g = grad_bf16 ? bf16_to_float(((const unsigned short*)grad)[at]) : ((const float*)grad)[at];
                    const float gi = g * grad_scale;
                    m1[k] = beta1 * (s_table[mc[at]] * m_scale) + one_minus_beta1 * gi;
                    const float r0 = s_table[256 + vc[at]] * v_scale; // v is coded by its square root
                    v1[k] = beta2 * (r0 * r0) + one_minus_beta2 * gi * gi;
                    bad |= !(v1[k] < inf);
                    mmax = fmaxf(mmax, m1[k]); mmin = fminf(mmin, m1[k]); vmax = fmaxf(vmax, v1[k]);
                }
            }
            for (int o = 16; o > 0; o >>= 1)
            {
                mmax = fmaxf(mmax, __shfl_xor_sync(0xffffffffu, mmax, o));
                mmin = fminf(mmin, __shfl_xor_sync(0xffffffffu, mmin, o));
                vmax = fmaxf(vmax, __shfl_xor_sync(0xffffffffu, vmax, o));
                bad |= __shfl_xor_sync(0xffffffffu, bad, o);
            }
            const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
            if (lane == 0) { s_mmax[warp] = mmax; s_mmin[warp] = mmin; s_vmax[warp] = vmax; s_bad[warp] = bad; }
            __syncthreads();
            mmax = s_mmax[0]; mmin = s_mmin[0]; vmax = s_vmax[0]; bad = s_bad[0];
            for (int w = 1; w < AIOS_THREADS / 32; w++)
            {
                mmax = fmaxf(mmax, s_mmax[w]); mmin = fminf(mmin, s_mmin[w]); vmax = fmaxf(vmax, s_vmax[w]); bad |= s_bad[w];
            }
            if (bad) return; // a non-finite second moment: the block stays as it was (the whole block agrees)

            const float m_new = mmax >= -mmin ? mmax : mmin, v_new = sqrtf(vmax);
            const float m_inv = m_new == 0.0f ? 0.0f : 1.0f / m_new, v_inv = v_new == 0.0f ? 0.0f : 1.0f / v_new;
            const unsigned int key = aios_mix(aios_mix((unsigned int)step) ^ block_seeds[b]);
            #pragma unroll
            for (int k = 0; k < AIOS_PER; k++)
            {
                const int i = threadIdx.x + k * AIOS_THREADS;
                if (i < n)
                {
                    const long long at = start + i;
                    const float r1 = sqrtf(v1[k]);
                    const float pi = p[at] * decay - step_size * m1[k] / (r1 * inv_sqrt_bias2 + eps);
                    p[at] = pi;
                    const unsigned int h = aios_mix(key + (unsigned int)i);
                    const float um = fmaf((float)(int)(h & 0xffffu), 1.0f / 65536.0f, 1.0f / 131072.0f);
                    const float uv = fmaf((float)(int)(h >> 16), 1.0f / 65536.0f, 1.0f / 131072.0f);
                    mc[at] = quantize_stochastic(m1[k] * m_inv, um, s_table + 512, 1);
                    vc[at] = quantize_stochastic(r1 * v_inv, uv, s_table + 768, 0);
                    if (working) working[at] = float_to_bf16(pi);
                }
            }
            if (threadIdx.x == 0) { ms[b] = m_new; vs[b] = v_new; }
        }
        """;

    private static readonly Lock Gate = new();
    private static nint _kernel;
    private readonly AdamWOptions _options;
    private readonly Tensor _table;
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<DeviceEightBitMoments, Tensor> _seeds = new();

    /// <summary>Compiles (once per process) and loads the kernel for the current CUDA device, and puts the map tables on <paramref name="device"/>.</summary>
    /// <exception cref="InvalidOperationException">No NVRTC, or the compilation or load failed.</exception>
    public FusedCudaAdamW8bit(AdamWOptions options, Device device)
    {
        _options = options;
        lock (Gate)
        {
            if (_kernel == 0)
            {
                var (major, minor, _) = CudaDriver.DeviceInfo();
                byte[] ptx = Nvrtc.CompileToPtx(Source, "aios_adamw8bit.cu", major, minor, "--fmad=false");
                _kernel = CudaDriver.LoadKernel(ptx, "aios_adamw8bit");
            }
        }
        using var scope = NewDisposeScope();
        _table = tensor(EightBitAdamKernel.Table()).to(device).DetachFromDisposeScope();
    }

    /// <summary>Whether the kernel can be built here (NVRTC present); the device must still be CUDA.</summary>
    public static bool IsAvailable => Nvrtc.IsAvailable;

    public string Name => "fused-cuda-8bit";

    public void Update(Tensor master, Tensor gradient, DeviceEightBitMoments moments, Tensor? working, int step, float gradScale)
    {
        long n = moments.Elements;
        DeviceKernels.Require(master, ScalarType.Float32, n, nameof(master));
        DeviceKernels.Require(moments.MCodes, ScalarType.Byte, n, "m codes");
        DeviceKernels.Require(moments.VCodes, ScalarType.Byte, n, "v codes");
        using var scope = NewDisposeScope();
        // The kernel reads fp32 or bf16 gradients; fp16 (and any other) is widened first.
        Tensor g = gradient.dtype is ScalarType.Float32 or ScalarType.BFloat16 ? gradient : gradient.to(ScalarType.Float32);
        DeviceKernels.Require(g, g.dtype, n, nameof(gradient));
        // The kernel writes a bf16 working copy; an fp16 one is copied from the master afterwards.
        bool kernelWrites = working is not null && working.dtype == ScalarType.BFloat16;
        if (kernelWrites) DeviceKernels.Require(working!, ScalarType.BFloat16, n, nameof(working));

        var k = BlockwiseAdam.Coefficients.For(step, _options.HyperParametersAt(step), gradScale);
        nint p = CudaDriver.DataOf(master), gp = CudaDriver.DataOf(g), mc = CudaDriver.DataOf(moments.MCodes), ms = CudaDriver.DataOf(moments.MScales);
        nint vc = CudaDriver.DataOf(moments.VCodes), vs = CudaDriver.DataOf(moments.VScales), starts = CudaDriver.DataOf(moments.BlockStarts);
        nint table = CudaDriver.DataOf(_table), w = kernelWrites ? CudaDriver.DataOf(working!) : 0;
        int gradBf16 = g.dtype == ScalarType.BFloat16 ? 1 : 0;
        float decay = k.Decay, beta1 = k.Beta1, b1 = k.OneMinusBeta1, beta2 = k.Beta2, b2 = k.OneMinusBeta2;
        float stepSize = k.StepSize, invSqrtBias2 = k.InvSqrtBias2, eps = k.Epsilon, scale = k.GradScale;
        int stepArg = step;
        nint seeds = CudaDriver.DataOf(SeedsOf(moments));
        void** args = stackalloc void*[21];
        args[0] = &p; args[1] = &gp; args[2] = &gradBf16; args[3] = &mc; args[4] = &ms; args[5] = &vc; args[6] = &vs; args[7] = &starts;
        args[8] = &table; args[9] = &w; args[10] = &decay; args[11] = &beta1; args[12] = &b1; args[13] = &beta2; args[14] = &b2;
        args[15] = &stepSize; args[16] = &invSqrtBias2; args[17] = &eps; args[18] = &scale; args[19] = &stepArg; args[20] = &seeds;
        CudaDriver.Launch(_kernel, checked((int)moments.Blocks), 256, args);
        if (working is not null && !kernelWrites)
            using (no_grad()) working.copy_(master);
    }

    /// <summary>The unit's block seeds on its device (<see cref="EightBitAdamKernel.BlockSeeds"/>), made once per moments object.</summary>
    private Tensor SeedsOf(DeviceEightBitMoments moments)
    {
        lock (_seeds)
            return _seeds.GetValue(moments, m =>
            {
                using var scope = NewDisposeScope();
                return tensor(EightBitAdamKernel.BlockSeeds(m.Pieces), ScalarType.Int32).to(m.MCodes.device).DetachFromDisposeScope();
            });
    }
}

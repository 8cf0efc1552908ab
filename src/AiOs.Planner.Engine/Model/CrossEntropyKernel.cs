using AiOs.Planner.Engine.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Model;

/// <summary>
/// Softmax cross-entropy and its gradient in one CUDA kernel over a chunk's logits, for the fused head
/// (<see cref="ChunkedHeadLoss"/>): one thread block per row reads the row's logits (bf16 or fp32) to find its
/// log-sum-exp (an online maximum and sum), writes the row's loss <c>lse − logit[target]</c> (0 for an ignored row) and
/// then overwrites the logits in place with the gradient <c>(softmax − one-hot) · weight · scale</c>, zero in the padded
/// columns. The tensor-op chunk it replaces (log-softmax into fp32, gather, exp, scatter, scale, cast back) moved about
/// 28 bytes per logit through device memory; this moves 6 in bf16 (two reads, one write) and keeps no fp32 copy, which
/// was most of the head's time on gpt2 (11.5 of a 35 ms step on the H100, 2026-12-06).
/// </summary>
/// <remarks>
/// Compiled with NVRTC at first use, then checked once against the tensor ops on a small random problem (the kernel is
/// never compiled on a machine without a GPU, so a mistake must not cost a run): if it does not compile, load or agree,
/// <see cref="TryGet"/> returns null with the reason on stderr and the head keeps the tensor ops. Rows sum their loss in a
/// fixed order (per thread, then by warp shuffles, then across warps), so the result is the same from run to run.
/// </remarks>
internal sealed unsafe class CrossEntropyKernel
{
    private const string Source = DeviceKernels.Bf16Conversions + """
        __device__ __forceinline__ float load(const void* p, long long i, int bf16)
        {
            return bf16 ? bf16_to_float(((const unsigned short*)p)[i]) : ((const float*)p)[i];
        }
        __device__ __forceinline__ void store(void* p, long long i, float f, int bf16)
        {
            if (bf16) ((unsigned short*)p)[i] = float_to_bf16(f);
            else ((float*)p)[i] = f;
        }
        // Merges (m2, s2) into (m, s): s is a sum of exp(x − m); an empty side (s = 0) adds nothing, whatever its m.
        __device__ __forceinline__ void merge(float& m, float& s, float m2, float s2)
        {
            if (s2 == 0.0f) return;
            if (s == 0.0f) { m = m2; s = s2; return; }
            float top = fmaxf(m, m2);
            // Both sides only −∞ so far: exp(−∞ − −∞) would be NaN. (NVRTC has no math.h: −∞ by its bits, not INFINITY.)
            if (top == __uint_as_float(0xff800000u)) { s += s2; return; }
            s = s * expf(m - top) + s2 * expf(m2 - top);
            m = top;
        }
        extern "C" __global__ void aios_cross_entropy(void* logits, int bf16, long long stride, long long vocab,
            const long long* __restrict__ targets, const float* __restrict__ weights, const float* __restrict__ scale,
            float* __restrict__ row_loss, int write_gradient)
        {
            __shared__ float shared_m[32], shared_s[32], shared_lse;
            long long row = blockIdx.x;
            char* base = (char*)logits + row * stride * (bf16 ? 2 : 4);
            float m = 0.0f, s = 0.0f;
            for (long long j = threadIdx.x; j < vocab; j += blockDim.x)
                merge(m, s, load(base, j, bf16), 1.0f);
            for (int offset = 16; offset > 0; offset >>= 1)
            {
                float m2 = __shfl_down_sync(0xffffffffu, m, offset), s2 = __shfl_down_sync(0xffffffffu, s, offset);
                merge(m, s, m2, s2);
            }
            int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = (blockDim.x + 31) >> 5;
            if (lane == 0) { shared_m[warp] = m; shared_s[warp] = s; }
            __syncthreads();
            long long target = targets[row];
            float weight = weights[row];
            if (threadIdx.x == 0)
            {
                m = shared_m[0]; s = shared_s[0];
                for (int w = 1; w < warps; w++) merge(m, s, shared_m[w], shared_s[w]);
                float lse = m + logf(s);
                shared_lse = lse;
                // Read before the gradient overwrites the row (the barrier below orders it). A target outside the vocabulary
                // reads nothing and makes the loss NaN, which the trainer refuses, as the tensor ops' gather would fail.
                bool inside = target >= 0 && target < vocab;
                row_loss[row] = weight == 0.0f ? 0.0f : inside ? lse - load(base, target, bf16) : __int_as_float(0x7fc00000);
            }
            __syncthreads();
            if (!write_gradient) return;
            float lse = shared_lse, factor = weight * scale[0];
            for (long long j = threadIdx.x; j < stride; j += blockDim.x)
            {
                float g = 0.0f;
                if (j < vocab) g = (expf(load(base, j, bf16) - lse) - (j == target ? 1.0f : 0.0f)) * factor;
                store(base, j, g, bf16);
            }
        }
        """;

    private const int Threads = 512;
    private static readonly Lock Gate = new();
    private static CrossEntropyKernel? _instance;
    private static bool _tried;
    private static string? _unavailable;

    /// <summary>
    /// Why the kernel did not run in this process (it failed to compile or load, or disagreed with the tensor ops), once
    /// <see cref="TryGet"/> tried it; null while it runs, was not tried, or was turned off with <c>AIOS_HEAD_KERNEL=0</c>.
    /// The run's summary carries it, since the plan priced the kernel.
    /// </summary>
    public static string? Unavailable { get { lock (Gate) return _unavailable; } }
    private readonly nint _function;

    private CrossEntropyKernel(nint function) => _function = function;

    /// <summary>
    /// The kernel for <paramref name="device"/> (the logits' GPU, current on this thread: one GPU per process, as the engine's
    /// ranks are processes), compiled, loaded and checked there once per process; null where it cannot run
    /// (no NVRTC, a compile or load error, or a result that disagrees with the tensor ops), with the reason on stderr once.
    /// Set <c>AIOS_HEAD_KERNEL=0</c> to keep the tensor ops (for comparison).
    /// </summary>
    public static CrossEntropyKernel? TryGet(Device device)
    {
        lock (Gate)
        {
            if (_tried) return _instance;
            _tried = true;
            if (Environment.GetEnvironmentVariable("AIOS_HEAD_KERNEL") == "0" || !Nvrtc.IsAvailable) return null;
            _instance = DeviceKernels.CompileChecked(Source, "aios_cross_entropy", (function, _) => new CrossEntropyKernel(function),
                kernel => kernel.SelfCheck(device), "the fused head's cross-entropy kernel", "the fused head uses the tensor ops", out _unavailable);
            return _instance;
        }
    }

    /// <summary>Whether <see cref="Run"/> takes logits of this type on this device: CUDA, bf16 or fp32.</summary>
    public static bool Takes(Tensor logits) =>
        logits.device_type == DeviceType.CUDA && logits.dtype is ScalarType.BFloat16 or ScalarType.Float32;

    /// <summary>
    /// Each row's loss into <paramref name="rowLoss"/> and, when <paramref name="writeGradient"/>, the gradient over
    /// <paramref name="logits"/> [rows, padded] in place: columns from <paramref name="vocab"/> on are padding (left out of
    /// the softmax, gradient zero). <paramref name="targets"/> (int64, in 0 … vocab − 1) and <paramref name="weights"/>
    /// (fp32: 1 for a counted row, 0 for an ignored one) have one entry per row; <paramref name="scale"/> is one fp32
    /// value on the device (1 / (tokens · divisor)), so nothing waits for the host.
    /// </summary>
    public void Run(Tensor logits, long vocab, Tensor targets, Tensor weights, Tensor scale, Tensor rowLoss, bool writeGradient)
    {
        if (!Takes(logits) || !logits.is_contiguous() || logits.dim() != 2 || vocab < 1 || vocab > logits.shape[1])
            throw new ArgumentException($"The logits must be a contiguous CUDA bf16 or fp32 matrix at least {vocab} wide.", nameof(logits));
        long rows = logits.shape[0], stride = logits.shape[1];
        DeviceKernels.Require(targets, ScalarType.Int64, rows, nameof(targets));
        DeviceKernels.Require(weights, ScalarType.Float32, rows, nameof(weights));
        DeviceKernels.Require(scale, ScalarType.Float32, 1, nameof(scale));
        DeviceKernels.Require(rowLoss, ScalarType.Float32, rows, nameof(rowLoss));
        if (rows == 0) return;
        if (rows > int.MaxValue) throw new ArgumentException($"{rows} rows exceed one launch's grid.", nameof(logits));
        nint l = CudaDriver.DataOf(logits), t = CudaDriver.DataOf(targets), w = CudaDriver.DataOf(weights), sc = CudaDriver.DataOf(scale), r = CudaDriver.DataOf(rowLoss);
        int bf16 = logits.dtype == ScalarType.BFloat16 ? 1 : 0, write = writeGradient ? 1 : 0;
        void** args = stackalloc void*[9];
        args[0] = &l; args[1] = &bf16; args[2] = &stride; args[3] = &vocab; args[4] = &t; args[5] = &w; args[6] = &sc; args[7] = &r; args[8] = &write;
        CudaDriver.Launch(_function, (int)rows, Threads, args);
    }

    /// <summary>
    /// Runs the kernel on a small random problem (an odd vocabulary with padding, an ignored row, bf16 and fp32) and
    /// compares loss and gradient with the tensor ops; returns what disagrees, or null.
    /// </summary>
    private string? SelfCheck(Device device)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        const long rows = 6;
        const float factor = 0.125f;
        // Drawn on the CPU from a generator of its own, so the training's random streams are untouched.
        using var generator = new Generator(1234);
        // Scalars held by this frame across the calls (Native.KeptScalars says why).
        using Scalar spread = 4, eighth = factor;
        // An odd vocabulary with padding, and one narrower than a warp (most of the block's threads see no element).
        foreach ((long vocab, long padded, ScalarType type) in new[] { (1003L, 1024L, ScalarType.Float32), (1003L, 1024L, ScalarType.BFloat16), (20L, 64L, ScalarType.BFloat16) })
        {
            Tensor logits = randn([rows, padded], ScalarType.Float32, generator: generator).mul(spread).to(type).to(device);
            Tensor targets = randint(0, vocab, [rows], ScalarType.Int64, generator: generator).to(device);
            Tensor weights = tensor(new float[] { 1, 1, 0, 1, 1, 1 }).to(device);
            Tensor scale = full([1], eighth, ScalarType.Float32, device);
            // The tensor ops' loss and gradient, in fp32 from the same logits.
            Tensor logProbs = special.log_softmax(logits.narrow(1, 0, vocab), 1, ScalarType.Float32);
            Tensor expectedLoss = logProbs.gather(1, targets.unsqueeze(1)).squeeze(1).neg().mul(weights);
            Tensor expectedGrad = logProbs.exp().scatter_add(1, targets.unsqueeze(1), weights.neg().unsqueeze(1)).mul(weights.mul(eighth).unsqueeze(1));
            Tensor rowLoss = empty([rows], ScalarType.Float32, device);
            Tensor work = logits.clone();
            Run(work, vocab, targets, weights, scale, rowLoss, writeGradient: true);
            double lossError = (rowLoss - expectedLoss).abs().max().item<float>();
            double gradError = (work.narrow(1, 0, vocab).to(ScalarType.Float32) - expectedGrad).abs().max().item<float>();
            double padding = work.narrow(1, vocab, padded - vocab).to(ScalarType.Float32).abs().max().item<float>();
            // bf16 logits and gradients carry 8 bits: the gradient to half an ulp of 0.125 (its largest magnitude), the loss as fp32 sums.
            double gradTolerance = type == ScalarType.BFloat16 ? factor / 256 : 1e-6;
            if (!(lossError <= 1e-4) || !(gradError <= gradTolerance) || padding != 0)
                return $"{type}: loss off by {lossError:G3}, gradient by {gradError:G3}, padding {padding:G3}";
        }
        return null;
    }
}

using AiOs.Planner.Engine.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Execution;

/// <summary>
/// One unit's Σg² on a GPU in one pass over its gradient (fp32, bf16 or fp16, read where it lies): each warp takes rows of
/// <see cref="GradientNorms.RowElements"/> in turn and sums the row's squares in fp32 (each lane its 32 elements in order,
/// then the lanes by a fixed shuffle tree), adds the row's sum into the warp's fp64 total, and the block writes its warps'
/// totals, summed in a fixed order, as one fp64 partial; one sum over every unit's partials follows. The rows are the ones
/// the tensor path takes norms of; that path squares each row's fp32 norm in fp64 and sums the row in torch's order, so the
/// two agree to rounding (the self-check allows 1e-5 of the sum).
/// </summary>
/// <remarks>
/// The tensor path it replaces cast each 8 M-element chunk of a bf16 gradient to fp32, took the rows' norms and squared
/// them in fp64: three to four launches per chunk (gpt2-xl at micro-batch 1 on an H100 VM, 2026-12-07: 251 casts, 251 norm
/// reductions and 49 fp64 sums, about 9 ms of device time and a quarter of the step's 2,814 launches) and 10 bytes moved per
/// bf16 parameter; this moves 2, in one launch per unit and one sum for them all. Compiled with NVRTC at first use and checked once against the tensor
/// path (random rows with a short tail, each type, a NaN and an infinity): if it does not compile, load or agree,
/// <see cref="TryGet"/> returns null with the reason on stderr and the tensor path stays. <c>AIOS_NORM_KERNEL=0</c> keeps the
/// tensor path (for an A/B). The order of every sum is fixed, so a unit's result is the same from run to run.
/// </remarks>
internal sealed unsafe class SumOfSquaresKernel
{
    private const string Source = DeviceKernels.Bf16Conversions + """
        __device__ __forceinline__ float half_to_float(unsigned short h)
        {
            float f;
            asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
            return f;
        }
        // type: 0 fp32, 1 bf16, 2 fp16.
        __device__ __forceinline__ float load(const void* p, long long i, int type)
        {
            if (type == 1) return bf16_to_float(((const unsigned short*)p)[i]);
            if (type == 2) return half_to_float(((const unsigned short*)p)[i]);
            return ((const float*)p)[i];
        }
        extern "C" __global__ void aios_sum_of_squares(const void* __restrict__ g, int type, long long n, double* __restrict__ partials)
        {
            __shared__ double warp_totals[32];
            const long long row_elements = 1024;
            int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
            long long rows = (n + row_elements - 1) / row_elements;
            double total = 0.0;
            for (long long r = (long long)blockIdx.x * warps + warp; r < rows; r += (long long)gridDim.x * warps)
            {
                long long base = r * row_elements;
                float s = 0.0f;
                #pragma unroll 8
                for (int k = 0; k < 32; k++)
                {
                    long long i = base + lane + 32 * k;
                    if (i < n) { float x = load(g, i, type); s += x * x; }
                }
                for (int offset = 16; offset > 0; offset >>= 1) s += __shfl_down_sync(0xffffffffu, s, offset);
                if (lane == 0) total += (double)s;
            }
            if (lane == 0) warp_totals[warp] = total;
            __syncthreads();
            if (threadIdx.x == 0)
            {
                double block = 0.0;
                for (int w = 0; w < warps; w++) block += warp_totals[w];
                partials[blockIdx.x] = block;
            }
        }
        """;

    private const int Threads = 256;
    private static readonly Lock Gate = new();
    private static SumOfSquaresKernel? _instance;
    private static bool _tried;
    private static string? _unavailable;
    private readonly nint _function;

    /// <summary>
    /// Why the kernel did not run in this process (it failed to compile or load, or disagreed with the tensor path), once
    /// <see cref="TryGet"/> tried it; null while it runs, was not tried, or was turned off with <c>AIOS_NORM_KERNEL=0</c>. The
    /// run's summary carries it, since the plan priced the kernel's bytes.
    /// </summary>
    public static string? Unavailable { get { lock (Gate) return _unavailable; } }

    private SumOfSquaresKernel(nint function, int blocks) => (_function, Blocks) = (function, blocks);

    /// <summary>Blocks per launch (four per multiprocessor), so the partials a unit writes.</summary>
    public int Blocks { get; }

    /// <summary>
    /// The kernel for <paramref name="device"/> (current on this thread: one GPU per process, as the engine's ranks are
    /// processes), compiled, loaded and checked there once per process; null where it cannot run (no NVRTC, a compile or load error, a result that disagrees with the tensor path, or
    /// <c>AIOS_NORM_KERNEL=0</c>), with the reason on stderr once.
    /// </summary>
    public static SumOfSquaresKernel? TryGet(Device device)
    {
        lock (Gate)
        {
            if (_tried) return _instance;
            _tried = true;
            if (device.type != DeviceType.CUDA || Environment.GetEnvironmentVariable("AIOS_NORM_KERNEL") == "0" || !Nvrtc.IsAvailable) return null;
            _instance = DeviceKernels.CompileChecked(Source, "aios_sum_of_squares", (function, sms) => new SumOfSquaresKernel(function, Math.Max(1, sms * 4)),
                kernel => kernel.SelfCheck(device), "the gradient-norm kernel", "Σg² uses the tensor ops", out _unavailable);
            return _instance;
        }
    }

    /// <summary>Whether <see cref="Sum"/> takes this gradient: contiguous, on CUDA, fp32, bf16 or fp16.</summary>
    public static bool Takes(Tensor gradient) =>
        gradient.device_type == DeviceType.CUDA && gradient.is_contiguous()
        && gradient.dtype is ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16;

    /// <summary>Σg² of <paramref name="gradient"/> as an fp64 scalar on its device: one launch into <see cref="Blocks"/> partials and their sum, without waiting.</summary>
    public Tensor Sum(Tensor gradient) =>
        // The same reduction as a unit among several (Sums), so both give the same bits; the temporaries are the caller's
        // dispose scope's, as the tensor path's are.
        Sums([gradient]).reshape([]);

    /// <summary>
    /// Each of <paramref name="gradients"/>' Σg² as an fp64 vector on their device: one launch per unit into one buffer of
    /// partials, then one sum over it (a unit's sum alone would cost a launch of its own), without waiting.
    /// </summary>
    public Tensor Sums(IReadOnlyList<Tensor> gradients)
    {
        if (gradients.Count == 0) throw new ArgumentException("No gradients.", nameof(gradients));
        Tensor partials = empty([gradients.Count, Blocks], ScalarType.Float64, gradients[0].device);
        for (int u = 0; u < gradients.Count; u++) Launch(gradients[u], partials, (long)u * Blocks);
        return partials.sum(1);
    }

    /// <summary>Queues the kernel over <paramref name="gradient"/>, writing its <see cref="Blocks"/> partials from element <paramref name="offset"/> of <paramref name="partials"/>.</summary>
    private void Launch(Tensor gradient, Tensor partials, long offset)
    {
        if (!Takes(gradient)) throw new ArgumentException("The gradient must be a contiguous CUDA fp32, bf16 or fp16 tensor.", nameof(gradient));
        nint g = CudaDriver.DataOf(gradient), p = CudaDriver.DataOf(partials) + (nint)(offset * sizeof(double));
        int type = gradient.dtype switch { ScalarType.BFloat16 => 1, ScalarType.Float16 => 2, _ => 0 };
        long n = gradient.numel();
        void** args = stackalloc void*[4];
        args[0] = &g; args[1] = &type; args[2] = &n; args[3] = &p;
        CudaDriver.Launch(_function, Blocks, Threads, args);
    }

    /// <summary>
    /// Runs the kernel on random gradients (a short tail row, more rows than one launch's warps, each type; one with a NaN,
    /// one with an infinity) and compares with the tensor path; returns what disagrees, or null.
    /// </summary>
    private string? SelfCheck(Device device)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        // Drawn on the CPU from a generator of its own, so the training's random streams are untouched.
        using var generator = new Generator(4321);
        long many = (long)Blocks * (Threads / 32) * GradientNorms.RowElements + 77;
        foreach ((long n, ScalarType type) in new[] { (3000L, ScalarType.Float32), (3000L, ScalarType.BFloat16), (3000L, ScalarType.Float16), (many, ScalarType.BFloat16), (5L, ScalarType.Float32) })
        {
            Tensor g = randn([n], ScalarType.Float32, generator: generator).to(type).to(device);
            double expected = GradientNorms.TensorUnitSum(g).item<double>(), actual = Sum(g).item<double>();
            if (!(Math.Abs(actual - expected) <= 1e-5 * Math.Abs(expected)))
                return $"{type}, {n} elements: {actual} against {expected}";
        }
        foreach (ScalarType type in new[] { ScalarType.BFloat16, ScalarType.Float16, ScalarType.Float32 })
            foreach (float bad in new[] { float.NaN, float.PositiveInfinity })
            {
                Tensor g = ones([2100], type, device);
                // A Scalar this frame holds across the call (Native.KeptScalars says why).
                using (Scalar value = bad) g.narrow(0, 1500, 1).fill_(value);
                double actual = Sum(g).item<double>();
                if (float.IsNaN(bad) ? !double.IsNaN(actual) : !double.IsPositiveInfinity(actual))
                    return $"a {type} gradient holding {bad} gave {actual}";
            }
        // Several units at once, as the update takes them: each its own sum.
        Tensor[] units = [ones([3000], ScalarType.BFloat16, device), ones([5], ScalarType.Float32, device).mul_(Native.KeptScalars.Two), ones([1025], ScalarType.Float16, device)];
        double[] sums = Sums(units).cpu().data<double>().ToArray();
        if (sums is not [3000, 20, 1025])
            return $"three units at once gave {string.Join(", ", sums)} against 3000, 20, 1025";
        return null;
    }
}

using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AiOs.Planner.Optim;

/// <summary>AdamW hyper-parameters (PyTorch's defaults except the weight decay, which DeepSpeed's CPU Adam also defaults to 0.01 for AdamW).</summary>
public sealed record AdamHyperParameters
{
    public float LearningRate { get; init; } = 1e-3f;
    public float Beta1 { get; init; } = 0.9f;
    public float Beta2 { get; init; } = 0.999f;
    public float Epsilon { get; init; } = 1e-8f;
    /// <summary>Decoupled weight decay (AdamW): parameters shrink by lr × decay each step, apart from the gradient.</summary>
    public float WeightDecay { get; init; } = 0.01f;
    /// <summary>
    /// Multiplies each gradient as it is read (gradient clipping's coefficient): the same float product a separate
    /// scaling pass would store, so the results are bit-identical to stepping on pre-scaled gradients, without that
    /// pass's read and write of every gradient. 1 (the default) leaves them as they are.
    /// </summary>
    public float GradientScale { get; init; } = 1f;
}

/// <summary>
/// The engine's CPU optimizer: AdamW on fp32 master weights, in place, in one pass (the optional bf16 copy
/// written in it), vectorised 512 or 256 bits wide where the processor has AVX-512 or AVX2 (else
/// <see cref="Vector{T}"/>) and spread over threads by contiguous chunks. Per element, with step t ≥ 1:
/// <c>p ← p·(1 − lr·wd)</c>; <c>m ← β1·m + (1−β1)·g</c>; <c>v ← β2·v + (1−β2)·g²</c>;
/// <c>p ← p − (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + ε)</c> — PyTorch's AdamW formulation.
/// </summary>
public static unsafe partial class CpuAdam
{
    /// <summary>Elements per chunk handed to a thread: big enough to amortise scheduling, small enough to balance (64 K floats = 256 KiB per array).</summary>
    private const long ChunkElements = 64 * 1024;

    /// <summary>One AdamW step over spans of equal length, using up to <paramref name="threads"/> threads (the spans stay pinned until it returns).</summary>
    public static void Step(Span<float> parameters, ReadOnlySpan<float> gradients, Span<float> m, Span<float> v, int step, AdamHyperParameters hp, int threads = 1)
    {
        ArgumentNullException.ThrowIfNull(hp);
        int n = parameters.Length;
        if (gradients.Length != n || m.Length != n || v.Length != n)
            throw new ArgumentException($"Parameters, gradients, m and v must have equal lengths; got {n}, {gradients.Length}, {m.Length}, {v.Length}.");
        fixed (float* p = parameters)
        fixed (float* g = gradients)
        fixed (float* pm = m)
        fixed (float* pv = v)
            Step(p, g, pm, pv, n, step, hp, threads);
    }

    /// <summary>
    /// One AdamW step over spans of equal length that also writes the updated parameters as bf16 (round to
    /// nearest even, as PyTorch casts) into <paramref name="bf16"/> in the same pass, as DeepSpeed's CPU Adam
    /// writes the half-precision copy: no second pass over the fp32 weights.
    /// </summary>
    public static void Step(Span<float> parameters, ReadOnlySpan<float> gradients, Span<float> m, Span<float> v, Span<ushort> bf16, int step, AdamHyperParameters hp, int threads = 1)
    {
        ArgumentNullException.ThrowIfNull(hp);
        // The kernel overload reads an empty copy as "none"; this one always writes it.
        if (bf16.Length != parameters.Length)
            throw new ArgumentException($"Parameters, gradients, m, v and the bf16 copy must have equal lengths; got {parameters.Length}, {gradients.Length}, {m.Length}, {v.Length}, {bf16.Length}.");
        Step(parameters, gradients, m, v, bf16, step, hp, threads, Best);
    }

    /// <summary>
    /// One AdamW step over spans of equal length that also writes the updated parameters as fp16 (round to nearest even, as
    /// PyTorch casts) into <paramref name="fp16"/>: each chunk is cast right after its update, while it is still in cache
    /// (<see cref="TensorPrimitives.ConvertToHalf(ReadOnlySpan{float}, Span{Half})"/>), as DeepSpeed's CPU Adam writes the fp16
    /// copy in its pass. A cast of the whole span after the update would read every updated weight from memory again: on an
    /// H100 VM (2026-12-07) fp16 offloaded updates ran at 1.4 G parameters/s against bf16's 4.8 with that pass done element by element.
    /// </summary>
    public static void Step(Span<float> parameters, ReadOnlySpan<float> gradients, Span<float> m, Span<float> v, Span<Half> fp16, int step, AdamHyperParameters hp, int threads = 1) =>
        Step(parameters, gradients, m, v, fp16, step, hp, threads, Best);

    /// <summary>As the fp16 overload with a chosen kernel.</summary>
    internal static void Step(Span<float> parameters, ReadOnlySpan<float> gradients, Span<float> m, Span<float> v, Span<Half> fp16, int step, AdamHyperParameters hp, int threads, Kernel kernel)
    {
        ArgumentNullException.ThrowIfNull(hp);
        int n = parameters.Length;
        if (gradients.Length != n || m.Length != n || v.Length != n || fp16.Length != n)
            throw new ArgumentException($"Parameters, gradients, m, v and the fp16 copy must have equal lengths; got {n}, {gradients.Length}, {m.Length}, {v.Length}, {fp16.Length}.");
        fixed (float* p = parameters)
        fixed (float* g = gradients)
        fixed (float* pm = m)
        fixed (float* pv = v)
        fixed (Half* h = fp16)
            Run(p, new Fp32Gradients(g), pm, pv, null, n, step, hp, threads, kernel, h);
    }

    /// <summary>As the span overloads with a chosen kernel; an empty <paramref name="bf16"/> means no bf16 copy (the tests run every kernel this way).</summary>
    internal static void Step(Span<float> parameters, ReadOnlySpan<float> gradients, Span<float> m, Span<float> v, Span<ushort> bf16, int step, AdamHyperParameters hp, int threads, Kernel kernel)
    {
        int n = parameters.Length;
        if (gradients.Length != n || m.Length != n || v.Length != n || (!bf16.IsEmpty && bf16.Length != n))
            throw new ArgumentException($"Parameters, gradients, m, v and the bf16 copy must have equal lengths; got {n}, {gradients.Length}, {m.Length}, {v.Length}, {bf16.Length}.");
        fixed (float* p = parameters)
        fixed (float* g = gradients)
        fixed (float* pm = m)
        fixed (float* pv = v)
        fixed (ushort* h = bf16)
            Step(p, g, pm, pv, bf16.IsEmpty ? null : h, n, step, hp, threads, kernel);
    }

    /// <summary>One AdamW step over <paramref name="count"/> elements at the given addresses, using up to <paramref name="threads"/> threads.</summary>
    public static void Step(float* parameters, float* gradients, float* m, float* v, long count, int step, AdamHyperParameters hp, int threads) =>
        Step(parameters, gradients, m, v, null, count, step, hp, threads);

    /// <summary>As the other overload, also writing the updated parameters as bf16 to <paramref name="bf16"/> unless it is null.</summary>
    public static void Step(float* parameters, float* gradients, float* m, float* v, ushort* bf16, long count, int step, AdamHyperParameters hp, int threads) =>
        Step(parameters, gradients, m, v, bf16, count, step, hp, threads, Best);

    /// <summary>As the public overload with a chosen kernel (the tests run every kernel against the scalar loop).</summary>
    internal static void Step(float* parameters, float* gradients, float* m, float* v, ushort* bf16, long count, int step, AdamHyperParameters hp, int threads, Kernel kernel) =>
        Run(parameters, new Fp32Gradients(gradients), m, v, bf16, count, step, hp, threads, kernel);

    /// <summary>
    /// One AdamW step that reads the gradients as bf16, as a bf16 gradient store keeps them: each is widened to fp32
    /// as it is read. Widening is exact, so the result is bit-identical to widening them into an fp32 array first and
    /// stepping on that, without that pass's 6 bytes per parameter (the pass is bound by memory: 28 bytes per
    /// parameter instead of 34 with the bf16 copy). Writes the bf16 copy of the parameters unless <paramref name="bf16"/> is empty.
    /// </summary>
    public static void StepBf16Gradients(Span<float> parameters, ReadOnlySpan<ushort> gradients, Span<float> m, Span<float> v, Span<ushort> bf16, int step, AdamHyperParameters hp, int threads = 1) =>
        StepBf16Gradients(parameters, gradients, m, v, bf16, step, hp, threads, Best);

    /// <summary>As the public overload with a chosen kernel.</summary>
    internal static void StepBf16Gradients(Span<float> parameters, ReadOnlySpan<ushort> gradients, Span<float> m, Span<float> v, Span<ushort> bf16, int step, AdamHyperParameters hp, int threads, Kernel kernel)
    {
        int n = parameters.Length;
        if (gradients.Length != n || m.Length != n || v.Length != n || (!bf16.IsEmpty && bf16.Length != n))
            throw new ArgumentException($"Parameters, bf16 gradients, m, v and the bf16 copy must have equal lengths; got {n}, {gradients.Length}, {m.Length}, {v.Length}, {bf16.Length}.");
        fixed (float* p = parameters)
        fixed (ushort* g = gradients)
        fixed (float* pm = m)
        fixed (float* pv = v)
        fixed (ushort* h = bf16)
            Run(p, new Bf16Gradients(g), pm, pv, bf16.IsEmpty ? null : h, n, step, hp, threads, kernel);
    }

    /// <summary>One AdamW step over <paramref name="count"/> elements whose gradients <paramref name="gradients"/> reads, on up to <paramref name="threads"/> threads by contiguous chunks.</summary>
    /// <remarks>With <paramref name="fp16"/>, each chunk's updated parameters are cast into it right after the chunk's update.</remarks>
    private static void Run<TGrad>(float* parameters, TGrad gradients, float* m, float* v, ushort* bf16, long count, int step, AdamHyperParameters hp, int threads, Kernel kernel,
        Half* fp16 = null)
        where TGrad : struct, IGradients<TGrad>
    {
        ArgumentNullException.ThrowIfNull(hp);
        ArgumentOutOfRangeException.ThrowIfLessThan(step, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        var k = Coefficients.For(step, hp);
        long chunks = (count + ChunkElements - 1) / ChunkElements;
        nint p = (nint)parameters, pm = (nint)m, pv = (nint)v, h = (nint)bf16, f = (nint)fp16;
        void Chunk(long c)
        {
            long start = c * ChunkElements;
            long n = Math.Min(ChunkElements, count - start);
            Update((float*)p + start, gradients.From(start), (float*)pm + start, (float*)pv + start, h == 0 ? null : (ushort*)h + start, n, k, kernel);
            if (f != 0) TensorPrimitives.ConvertToHalf(new ReadOnlySpan<float>((float*)p + start, (int)n), new Span<Half>((Half*)f + start, (int)n));
        }
        if (threads == 1 || chunks <= 1)
        {
            // One pass over the whole span, or, with an fp16 copy, chunk by chunk so each is cast while in cache.
            if (fp16 == null) Update(parameters, gradients, m, v, bf16, count, k, kernel);
            else for (long c = 0; c < chunks; c++) Chunk(c);
            return;
        }
        // The process's persistent workers, not Parallel.For: one update call per sub-group paid the thread pool's
        // one-by-one wake-up each time (issue 13, CpuWorkers). More threads than cores would only take turns on them.
        CpuWorkers.ForCores(threads).For(chunks, Chunk);
    }

    /// <summary>The per-step constants, computed once in double precision.</summary>
    internal readonly record struct Coefficients(float GradientScale, float Decay, float Beta1, float OneMinusBeta1, float Beta2, float OneMinusBeta2, float StepSize, float InvSqrtBias2, float Epsilon)
    {
        public static Coefficients For(int step, AdamHyperParameters hp)
        {
            double bias1 = 1 - Math.Pow(hp.Beta1, step);
            double bias2 = 1 - Math.Pow(hp.Beta2, step);
            if (!float.IsFinite(hp.GradientScale))
                throw new ArgumentOutOfRangeException(nameof(hp), hp.GradientScale, "AdamHyperParameters.GradientScale must be finite (the clipping coefficient, 1 for none).");
            return new Coefficients(
                hp.GradientScale,
                (float)(1 - (double)hp.LearningRate * hp.WeightDecay),
                hp.Beta1, 1 - hp.Beta1, hp.Beta2, 1 - hp.Beta2,
                (float)(hp.LearningRate / bias1),
                (float)(1 / Math.Sqrt(bias2)),
                hp.Epsilon);
        }
    }

    /// <summary>The kernels, narrowest first; <see cref="Best"/> picks the widest the processor runs natively.</summary>
    internal enum Kernel { Scalar, Vector, V256, V512 }

    /// <summary>The kernel <see cref="Step(float*, float*, float*, float*, ushort*, long, int, AdamHyperParameters, int)"/> uses on this processor.</summary>
    internal static Kernel Best { get; } =
        Vector512.IsHardwareAccelerated ? Kernel.V512 :
        Vector256.IsHardwareAccelerated ? Kernel.V256 :
        Vector.IsHardwareAccelerated ? Kernel.Vector : Kernel.Scalar;

    /// <summary>
    /// One pass over <paramref name="n"/> elements with the given kernel, the rest (fewer than two of its vectors,
    /// or all of them for <see cref="Kernel.Scalar"/>) element by element. Every kernel does the same float operations
    /// in the same order as the scalar loop — multiply then add, never fused: an FMA rounds once instead of
    /// twice and so would change the bits, and the pass is bound by memory, not arithmetic (an FMA variant measured
    /// no faster: docs/benchmarks.md) — so all of them
    /// give bit-identical results. Kernels wider than the processor's are emulated (slow but exact), which is
    /// how the tests reach the 512-bit one on a machine without AVX-512.
    /// </summary>
    // Fully optimised at the first call (AggressiveOptimization), never tier-0: tiered compilation counts calls only
    // after 100 ms without new tier-0 code, which a training process keeps jitting for its first steps, so the kernels
    // ran as tier-0 code with on-stack replacement, ~3.3× slower, for gpt2's first 5 steps on the H200 (9 ms per 7 M-
    // parameter layer, then 2.7 ms from step 6; issue 13, docs/simulator.md). The same holds for the 3 kernels below.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Update<TGrad>(float* p, TGrad g, float* m, float* v, ushort* h, long n, Coefficients k, Kernel kernel)
        where TGrad : struct, IGradients<TGrad>
    {
        long i = kernel switch
        {
            Kernel.V512 => Update512(p, g, m, v, h, n, k),
            Kernel.V256 => Update256(p, g, m, v, h, n, k),
            Kernel.Vector => UpdateVector(p, g, m, v, h, n, k),
            _ => 0,
        };
        for (; i < n; i++)
        {
            float gi = g.At(i) * k.GradientScale;
            float mi = k.Beta1 * m[i] + k.OneMinusBeta1 * gi;
            float vi = k.Beta2 * v[i] + k.OneMinusBeta2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            p[i] = p[i] * k.Decay - k.StepSize * mi / (MathF.Sqrt(vi) * k.InvSqrtBias2 + k.Epsilon);
            if (h != null) h[i] = ToBf16(p[i]);
        }
    }

    // Each kernel handles two vectors per iteration, so the bf16 results of both narrow into one full vector
    // of ushorts with a single store (packing, not element-by-element writes); it returns how many it did.

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static long Update256<TGrad>(float* p, TGrad g, float* m, float* v, ushort* h, long n, Coefficients k)
        where TGrad : struct, IGradients<TGrad>
    {
        var c = new Constants256(k);
        long i = 0, w = Vector256<float>.Count;
        for (; i <= n - 2 * w; i += 2 * w)
        {
            g.Load256(i, out var g0, out var g1);
            var p0 = c.Step(p + i, g0, m + i, v + i);
            var p1 = c.Step(p + i + w, g1, m + i + w, v + i + w);
            if (h != null) Vector256.Narrow(Constants256.Bf16(p0), Constants256.Bf16(p1)).Store(h + i);
        }
        return i;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static long Update512<TGrad>(float* p, TGrad g, float* m, float* v, ushort* h, long n, Coefficients k)
        where TGrad : struct, IGradients<TGrad>
    {
        var c = new Constants512(k);
        long i = 0, w = Vector512<float>.Count;
        for (; i <= n - 2 * w; i += 2 * w)
        {
            g.Load512(i, out var g0, out var g1);
            var p0 = c.Step(p + i, g0, m + i, v + i);
            var p1 = c.Step(p + i + w, g1, m + i + w, v + i + w);
            if (h != null) Vector512.Narrow(Constants512.Bf16(p0), Constants512.Bf16(p1)).Store(h + i);
        }
        return i;
    }

    /// <summary>The portable fallback (<see cref="Vector{T}"/>, e.g. 128-bit on Arm).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static long UpdateVector<TGrad>(float* p, TGrad g, float* m, float* v, ushort* h, long n, Coefficients k)
        where TGrad : struct, IGradients<TGrad>
    {
        var c = new ConstantsVector(k);
        long i = 0, w = Vector<float>.Count;
        for (; i <= n - 2 * w; i += 2 * w)
        {
            g.LoadVector(i, out var g0, out var g1);
            var p0 = c.Step(p + i, g0, m + i, v + i);
            var p1 = c.Step(p + i + w, g1, m + i + w, v + i + w);
            if (h != null) Vector.Narrow(ConstantsVector.Bf16(p0), ConstantsVector.Bf16(p1)).Store(h + i);
        }
        return i;
    }

    /// <summary>The coefficients broadcast once per pass, and one vector's update (the scalar loop's operations, in its order).</summary>
    private readonly struct Constants256
    {
        private readonly Vector256<float> _scale, _decay, _b1, _c1, _b2, _c2, _stepSize, _invSqrtBias2, _eps;

        // Inlined, so the kernel keeps the broadcasts in registers: fully optimised at its first call (no PGO), the JIT
        // left this constructor a call and read every constant from the stack in the loop, ~8% slower per thread.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Constants256(Coefficients k)
        {
            _scale = Vector256.Create(k.GradientScale);
            _decay = Vector256.Create(k.Decay);
            _b1 = Vector256.Create(k.Beta1);
            _c1 = Vector256.Create(k.OneMinusBeta1);
            _b2 = Vector256.Create(k.Beta2);
            _c2 = Vector256.Create(k.OneMinusBeta2);
            _stepSize = Vector256.Create(k.StepSize);
            _invSqrtBias2 = Vector256.Create(k.InvSqrtBias2);
            _eps = Vector256.Create(k.Epsilon);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector256<float> Step(float* p, Vector256<float> g, float* m, float* v)
        {
            var gi = g * _scale;
            var mi = _b1 * Vector256.Load(m) + _c1 * gi;
            var vi = _b2 * Vector256.Load(v) + _c2 * gi * gi;
            var pi = Vector256.Load(p) * _decay - _stepSize * mi / (Vector256.Sqrt(vi) * _invSqrtBias2 + _eps);
            mi.Store(m);
            vi.Store(v);
            pi.Store(p);
            return pi;
        }

        /// <summary>bf16 round to nearest even on the bits, in the low half of each lane; NaN becomes the quiet NaN 0x7FC0.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<uint> Bf16(Vector256<float> x)
        {
            var bits = x.AsUInt32();
            var rounded = (bits + Vector256.Create(0x7FFFu) + ((bits >>> 16) & Vector256<uint>.One)) >>> 16;
            return Vector256.ConditionalSelect(Vector256.Equals(x, x).AsUInt32(), rounded, Vector256.Create(0x7FC0u));
        }
    }

    /// <summary>As <see cref="Constants256"/>, 512 bits wide.</summary>
    private readonly struct Constants512
    {
        private readonly Vector512<float> _scale, _decay, _b1, _c1, _b2, _c2, _stepSize, _invSqrtBias2, _eps;

        // Inlined, so the kernel keeps the broadcasts in registers: fully optimised at its first call (no PGO), the JIT
        // left this constructor a call and read every constant from the stack in the loop, ~8% slower per thread.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Constants512(Coefficients k)
        {
            _scale = Vector512.Create(k.GradientScale);
            _decay = Vector512.Create(k.Decay);
            _b1 = Vector512.Create(k.Beta1);
            _c1 = Vector512.Create(k.OneMinusBeta1);
            _b2 = Vector512.Create(k.Beta2);
            _c2 = Vector512.Create(k.OneMinusBeta2);
            _stepSize = Vector512.Create(k.StepSize);
            _invSqrtBias2 = Vector512.Create(k.InvSqrtBias2);
            _eps = Vector512.Create(k.Epsilon);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector512<float> Step(float* p, Vector512<float> g, float* m, float* v)
        {
            var gi = g * _scale;
            var mi = _b1 * Vector512.Load(m) + _c1 * gi;
            var vi = _b2 * Vector512.Load(v) + _c2 * gi * gi;
            var pi = Vector512.Load(p) * _decay - _stepSize * mi / (Vector512.Sqrt(vi) * _invSqrtBias2 + _eps);
            mi.Store(m);
            vi.Store(v);
            pi.Store(p);
            return pi;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<uint> Bf16(Vector512<float> x)
        {
            var bits = x.AsUInt32();
            var rounded = (bits + Vector512.Create(0x7FFFu) + ((bits >>> 16) & Vector512<uint>.One)) >>> 16;
            return Vector512.ConditionalSelect(Vector512.Equals(x, x).AsUInt32(), rounded, Vector512.Create(0x7FC0u));
        }
    }

    /// <summary>As <see cref="Constants256"/>, <see cref="Vector{T}"/> wide.</summary>
    private readonly struct ConstantsVector
    {
        private readonly Vector<float> _scale, _decay, _b1, _c1, _b2, _c2, _stepSize, _invSqrtBias2, _eps;

        // Inlined, so the kernel keeps the broadcasts in registers: fully optimised at its first call (no PGO), the JIT
        // left this constructor a call and read every constant from the stack in the loop, ~8% slower per thread.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public ConstantsVector(Coefficients k)
        {
            _scale = new Vector<float>(k.GradientScale);
            _decay = new Vector<float>(k.Decay);
            _b1 = new Vector<float>(k.Beta1);
            _c1 = new Vector<float>(k.OneMinusBeta1);
            _b2 = new Vector<float>(k.Beta2);
            _c2 = new Vector<float>(k.OneMinusBeta2);
            _stepSize = new Vector<float>(k.StepSize);
            _invSqrtBias2 = new Vector<float>(k.InvSqrtBias2);
            _eps = new Vector<float>(k.Epsilon);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector<float> Step(float* p, Vector<float> g, float* m, float* v)
        {
            var gi = g * _scale;
            var mi = _b1 * Vector.Load(m) + _c1 * gi;
            var vi = _b2 * Vector.Load(v) + _c2 * gi * gi;
            var pi = Vector.Load(p) * _decay - _stepSize * mi / (Vector.SquareRoot(vi) * _invSqrtBias2 + _eps);
            mi.Store(m);
            vi.Store(v);
            pi.Store(p);
            return pi;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector<uint> Bf16(Vector<float> x)
        {
            var bits = Vector.AsVectorUInt32(x);
            var rounded = Vector.ShiftRightLogical(bits + new Vector<uint>(0x7FFFu) + (Vector.ShiftRightLogical(bits, 16) & Vector<uint>.One), 16);
            return Vector.ConditionalSelect(Vector.AsVectorUInt32(Vector.Equals(x, x)), rounded, new Vector<uint>(0x7FC0u));
        }
    }

    /// <summary>fp32 → bf16 bits, round to nearest even (PyTorch's cast); NaN becomes the quiet NaN 0x7FC0.</summary>
    private static ushort ToBf16(float x)
    {
        if (float.IsNaN(x)) return 0x7FC0;
        uint bits = BitConverter.SingleToUInt32Bits(x);
        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }
}

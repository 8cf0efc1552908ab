using System.Numerics;

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
}

/// <summary>
/// The engine's CPU optimizer: AdamW on fp32 master weights, in place, vectorised with
/// <see cref="Vector{T}"/> and spread over threads by contiguous chunks. Per element, with step t ≥ 1:
/// <c>p ← p·(1 − lr·wd)</c>; <c>m ← β1·m + (1−β1)·g</c>; <c>v ← β2·v + (1−β2)·g²</c>;
/// <c>p ← p − (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + ε)</c> — PyTorch's AdamW formulation.
/// </summary>
public static unsafe class CpuAdam
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
        int n = parameters.Length;
        if (gradients.Length != n || m.Length != n || v.Length != n || bf16.Length != n)
            throw new ArgumentException($"Parameters, gradients, m, v and the bf16 copy must have equal lengths; got {n}, {gradients.Length}, {m.Length}, {v.Length}, {bf16.Length}.");
        fixed (float* p = parameters)
        fixed (float* g = gradients)
        fixed (float* pm = m)
        fixed (float* pv = v)
        fixed (ushort* h = bf16)
            Step(p, g, pm, pv, h, n, step, hp, threads);
    }

    /// <summary>One AdamW step over <paramref name="count"/> elements at the given addresses, using up to <paramref name="threads"/> threads.</summary>
    public static void Step(float* parameters, float* gradients, float* m, float* v, long count, int step, AdamHyperParameters hp, int threads) =>
        Step(parameters, gradients, m, v, null, count, step, hp, threads);

    /// <summary>As the other overload, also writing the updated parameters as bf16 to <paramref name="bf16"/> unless it is null.</summary>
    public static void Step(float* parameters, float* gradients, float* m, float* v, ushort* bf16, long count, int step, AdamHyperParameters hp, int threads)
    {
        ArgumentNullException.ThrowIfNull(hp);
        ArgumentOutOfRangeException.ThrowIfLessThan(step, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        var k = Coefficients.For(step, hp);
        long chunks = (count + ChunkElements - 1) / ChunkElements;
        if (threads == 1 || chunks <= 1)
        {
            Update(parameters, gradients, m, v, bf16, count, k);
            return;
        }
        nint p = (nint)parameters, g = (nint)gradients, pm = (nint)m, pv = (nint)v, h = (nint)bf16;
        Parallel.For(0L, chunks, new ParallelOptions { MaxDegreeOfParallelism = threads }, c =>
        {
            long start = c * ChunkElements;
            long n = Math.Min(ChunkElements, count - start);
            Update((float*)p + start, (float*)g + start, (float*)pm + start, (float*)pv + start, h == 0 ? null : (ushort*)h + start, n, k);
        });
    }

    /// <summary>The per-step constants, computed once in double precision.</summary>
    private readonly record struct Coefficients(float Decay, float Beta1, float OneMinusBeta1, float Beta2, float OneMinusBeta2, float StepSize, float InvSqrtBias2, float Epsilon)
    {
        public static Coefficients For(int step, AdamHyperParameters hp)
        {
            double bias1 = 1 - Math.Pow(hp.Beta1, step);
            double bias2 = 1 - Math.Pow(hp.Beta2, step);
            return new Coefficients(
                (float)(1 - (double)hp.LearningRate * hp.WeightDecay),
                hp.Beta1, 1 - hp.Beta1, hp.Beta2, 1 - hp.Beta2,
                (float)(hp.LearningRate / bias1),
                (float)(1 / Math.Sqrt(bias2)),
                hp.Epsilon);
        }
    }

    private static void Update(float* p, float* g, float* m, float* v, ushort* h, long n, Coefficients k)
    {
        long i = 0;
        int w = Vector<float>.Count;
        if (Vector.IsHardwareAccelerated)
        {
            var decay = new Vector<float>(k.Decay);
            var b1 = new Vector<float>(k.Beta1);
            var c1 = new Vector<float>(k.OneMinusBeta1);
            var b2 = new Vector<float>(k.Beta2);
            var c2 = new Vector<float>(k.OneMinusBeta2);
            var stepSize = new Vector<float>(k.StepSize);
            var invSqrtBias2 = new Vector<float>(k.InvSqrtBias2);
            var eps = new Vector<float>(k.Epsilon);
            var roundBias = new Vector<uint>(0x7FFFu);
            var one = new Vector<uint>(1u);
            var quietNaN = new Vector<uint>(0x7FC0u);
            for (; i <= n - w; i += w)
            {
                var gi = Vector.Load(g + i);
                var mi = b1 * Vector.Load(m + i) + c1 * gi;
                var vi = b2 * Vector.Load(v + i) + c2 * gi * gi;
                var denom = Vector.SquareRoot(vi) * invSqrtBias2 + eps;
                var pi = Vector.Load(p + i) * decay - stepSize * mi / denom;
                mi.Store(m + i);
                vi.Store(v + i);
                pi.Store(p + i);
                if (h != null)
                {
                    // bf16 round to nearest even on the bits; NaN stays a quiet NaN.
                    var bits = Vector.AsVectorUInt32(pi);
                    var rounded = Vector.ShiftRightLogical(bits + roundBias + (Vector.ShiftRightLogical(bits, 16) & one), 16);
                    rounded = Vector.ConditionalSelect(Vector.AsVectorUInt32(Vector.Equals(pi, pi)), rounded, quietNaN);
                    for (int j = 0; j < w; j++) h[i + j] = (ushort)rounded[j];
                }
            }
        }
        for (; i < n; i++)
        {
            float gi = g[i];
            float mi = k.Beta1 * m[i] + k.OneMinusBeta1 * gi;
            float vi = k.Beta2 * v[i] + k.OneMinusBeta2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            p[i] = p[i] * k.Decay - k.StepSize * mi / (MathF.Sqrt(vi) * k.InvSqrtBias2 + k.Epsilon);
            if (h != null) h[i] = ToBf16(p[i]);
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

using System.Numerics;
using System.Runtime.InteropServices;
using AiOs.Planner.Optim;

namespace AiOs.Planner.Engine.Optim;

/// <summary>AdamW hyper-parameters, with torch.optim.AdamW's meanings (decoupled weight decay).</summary>
public sealed record AdamWOptions
{
    /// <summary>The base rate (the peak of <see cref="Schedule"/> when one is set; messages quote it).</summary>
    public double LearningRate { get; init; } = LearningRateSchedule.DefaultLearningRate;
    /// <summary>The rate of each update (warm-up, decay); null: <see cref="LearningRate"/> at every update.</summary>
    public LearningRateSchedule? Schedule { get; init; }
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double Epsilon { get; init; } = 1e-8;
    /// <summary>Decoupled weight decay, applied to every parameter (one parameter group).</summary>
    public double WeightDecay { get; init; } = 0.01;

    /// <summary>The rate of update <paramref name="step"/> (1-based, counting applied updates, as Adam's bias correction does).</summary>
    public double LearningRateAt(int step) => Schedule?.LrAt(step) ?? LearningRate;

    /// <summary>The float hyper-parameters of update <paramref name="step"/> that the CPU kernels (<see cref="CpuAdam"/>, <see cref="BlockwiseAdam"/>) take.</summary>
    public AdamHyperParameters HyperParametersAt(int step) => new()
    {
        LearningRate = (float)LearningRateAt(step), Beta1 = (float)Beta1, Beta2 = (float)Beta2,
        Epsilon = (float)Epsilon, WeightDecay = (float)WeightDecay,
    };
}

/// <summary>
/// One optimizer update of a contiguous sub-group, in place on fp32 spans. The engine hands it master
/// weights, the accumulated gradient and the two moments of one sub-group at a time, so any
/// implementation (this plain one, a vectorised multi-threaded CPU Adam) can stand behind it.
/// </summary>
public interface IOptimizerStep
{
    /// <summary>Applies update number <paramref name="step"/> (1-based) with the gradient multiplied by <paramref name="gradScale"/> (clipping).</summary>
    void Update(Span<float> master, ReadOnlySpan<float> gradient, Span<float> expAvg, Span<float> expAvgSq, int step, float gradScale);

    /// <summary>
    /// As <see cref="Update(Span{float}, ReadOnlySpan{float}, Span{float}, Span{float}, int, float)"/>, and writes
    /// the updated master weights as bf16 into <paramref name="bf16"/> (implementations may do it in the same pass).
    /// </summary>
    void Update(Span<float> master, ReadOnlySpan<float> gradient, Span<float> expAvg, Span<float> expAvgSq, int step, float gradScale, Span<ushort> bf16)
    {
        Update(master, gradient, expAvg, expAvgSq, step, gradScale);
        PrecisionCast.ToBf16(master, MemoryMarshal.AsBytes(bf16));
    }

    /// <summary>
    /// As <see cref="Update(Span{float}, ReadOnlySpan{float}, Span{float}, Span{float}, int, float)"/>, and writes the updated
    /// master weights as fp16 into <paramref name="fp16"/> (implementations may do it in the same pass).
    /// </summary>
    void Update(Span<float> master, ReadOnlySpan<float> gradient, Span<float> expAvg, Span<float> expAvgSq, int step, float gradScale, Span<Half> fp16)
    {
        Update(master, gradient, expAvg, expAvgSq, step, gradScale);
        PrecisionCast.ToFp16(master, MemoryMarshal.AsBytes(fp16));
    }
}

/// <summary>
/// AdamW on spans following torch.optim.AdamW (non-fused, non-amsgrad) operation by operation in fp32:
/// p ← p(1 − lr·wd); m ← m + (g − m)(1 − β1); v ← β2·v + (1 − β2)g²;
/// p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε).
/// Vectorised with <see cref="Vector{T}"/> and split in large chunks over the process's <see cref="CpuWorkers"/>; every element goes through
/// the same IEEE operations in the same order either way, so results do not depend on the split.
/// </summary>
public sealed class SpanAdamW : IOptimizerStep
{
    /// <summary>Elements per parallel chunk (a multiple of every vector width).</summary>
    private const int Chunk = 1 << 16;

    private readonly AdamWOptions _options;

    /// <summary>Uses <paramref name="options"/> for every update.</summary>
    public SpanAdamW(AdamWOptions options) => _options = options;

    /// <inheritdoc/>
    public unsafe void Update(Span<float> master, ReadOnlySpan<float> gradient, Span<float> expAvg, Span<float> expAvgSq, int step, float gradScale)
    {
        if (gradient.Length != master.Length || expAvg.Length != master.Length || expAvgSq.Length != master.Length)
            throw new ArgumentException("Master, gradient and moment spans must have the same length.", nameof(gradient));
        if (step < 1) throw new ArgumentOutOfRangeException(nameof(step), "Steps count from 1.");
        var k = new Coefficients(_options, step, gradScale);
        int n = master.Length;
        if (n <= Chunk)
        {
            Run(master, gradient, expAvg, expAvgSq, k);
            return;
        }
        fixed (float* p = master, g = gradient, m = expAvg, v = expAvgSq)
        {
            nint pp = (nint)p, gp = (nint)g, mp = (nint)m, vp = (nint)v;
            CpuWorkers.ForCores().For((n + Chunk - 1) / Chunk, c =>
            {
                int start = (int)c * Chunk, length = Math.Min(Chunk, n - start);
                Run(new Span<float>((float*)pp + start, length), new ReadOnlySpan<float>((float*)gp + start, length),
                    new Span<float>((float*)mp + start, length), new Span<float>((float*)vp + start, length), k);
            });
        }
    }

    private static void Run(Span<float> master, ReadOnlySpan<float> gradient, Span<float> expAvg, Span<float> expAvgSq, Coefficients k)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && master.Length >= Vector<float>.Count)
        {
            Span<Vector<float>> p = MemoryMarshal.Cast<float, Vector<float>>(master);
            ReadOnlySpan<Vector<float>> g = MemoryMarshal.Cast<float, Vector<float>>(gradient);
            Span<Vector<float>> m = MemoryMarshal.Cast<float, Vector<float>>(expAvg);
            Span<Vector<float>> v = MemoryMarshal.Cast<float, Vector<float>>(expAvgSq);
            var decay = new Vector<float>(k.Decay);
            var scale = new Vector<float>(k.GradScale);
            var oneMinusB1 = new Vector<float>(k.OneMinusB1);
            var b2 = new Vector<float>(k.B2);
            var oneMinusB2 = new Vector<float>(k.OneMinusB2);
            var bc2Sqrt = new Vector<float>(k.Bc2Sqrt);
            var eps = new Vector<float>(k.Eps);
            var stepSize = new Vector<float>(k.StepSize);
            for (int j = 0; j < p.Length; j++)
            {
                Vector<float> gj = g[j] * scale;
                Vector<float> pj = p[j] * decay;
                Vector<float> mj = m[j] + (gj - m[j]) * oneMinusB1;
                Vector<float> vj = v[j] * b2 + oneMinusB2 * gj * gj;
                Vector<float> denom = Vector.SquareRoot(vj) / bc2Sqrt + eps;
                p[j] = pj - stepSize * (mj / denom);
                m[j] = mj;
                v[j] = vj;
            }
            i = p.Length * Vector<float>.Count;
        }
        for (; i < master.Length; i++)
        {
            float g = gradient[i] * k.GradScale;
            float p = master[i] * k.Decay;
            float m = expAvg[i] + (g - expAvg[i]) * k.OneMinusB1;
            float v = expAvgSq[i] * k.B2 + k.OneMinusB2 * g * g;
            float denom = MathF.Sqrt(v) / k.Bc2Sqrt + k.Eps;
            master[i] = p - k.StepSize * (m / denom);
            expAvg[i] = m;
            expAvgSq[i] = v;
        }
    }

    /// <summary>The per-step scalars, computed once (bias corrections in double, as PyTorch does, then fp32).</summary>
    private readonly struct Coefficients(AdamWOptions o, int step, float gradScale)
    {
        public float GradScale { get; } = gradScale;
        public float Decay { get; } = 1f - (float)(o.LearningRateAt(step) * o.WeightDecay);
        public float OneMinusB1 { get; } = 1f - (float)o.Beta1;
        public float B2 { get; } = (float)o.Beta2;
        public float OneMinusB2 { get; } = 1f - (float)o.Beta2;
        public float Eps { get; } = (float)o.Epsilon;
        public float StepSize { get; } = (float)(o.LearningRateAt(step) / (1 - Math.Pow(o.Beta1, step)));
        public float Bc2Sqrt { get; } = (float)Math.Sqrt(1 - Math.Pow(o.Beta2, step));
    }
}

namespace AiOs.Planner.Engine.Optim;

/// <summary>AdamW hyper-parameters, with torch.optim.AdamW's meanings (decoupled weight decay).</summary>
public sealed record AdamWOptions
{
    public double LearningRate { get; init; } = 1e-3;
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double Epsilon { get; init; } = 1e-8;
    /// <summary>Decoupled weight decay, applied to every parameter (one parameter group).</summary>
    public double WeightDecay { get; init; } = 0.01;
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
}

/// <summary>
/// A straightforward AdamW on spans following torch.optim.AdamW (non-fused, non-amsgrad) operation by
/// operation in fp32: p ← p(1 − lr·wd); m ← m + (g − m)(1 − β1); v ← β2·v + (1 − β2)g²;
/// p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε).
/// </summary>
public sealed class SpanAdamW : IOptimizerStep
{
    private readonly AdamWOptions _options;

    /// <summary>Uses <paramref name="options"/> for every update.</summary>
    public SpanAdamW(AdamWOptions options) => _options = options;

    /// <inheritdoc/>
    public void Update(Span<float> master, ReadOnlySpan<float> gradient, Span<float> expAvg, Span<float> expAvgSq, int step, float gradScale)
    {
        if (gradient.Length != master.Length || expAvg.Length != master.Length || expAvgSq.Length != master.Length)
            throw new ArgumentException("Master, gradient and moment spans must have the same length.", nameof(gradient));
        if (step < 1) throw new ArgumentOutOfRangeException(nameof(step), "Steps count from 1.");
        float decay = 1f - (float)(_options.LearningRate * _options.WeightDecay);
        float b1 = (float)_options.Beta1, b2 = (float)_options.Beta2, oneMinusB1 = 1f - b1, oneMinusB2 = 1f - b2;
        float eps = (float)_options.Epsilon;
        double bc1 = 1 - Math.Pow(_options.Beta1, step);
        double bc2 = 1 - Math.Pow(_options.Beta2, step);
        float stepSize = (float)(_options.LearningRate / bc1);
        float bc2Sqrt = (float)Math.Sqrt(bc2);
        for (int i = 0; i < master.Length; i++)
        {
            float g = gradient[i] * gradScale;
            float p = master[i] * decay;
            float m = expAvg[i] + (g - expAvg[i]) * oneMinusB1;
            float v = expAvgSq[i] * b2 + oneMinusB2 * g * g;
            float denom = MathF.Sqrt(v) / bc2Sqrt + eps;
            master[i] = p - stepSize * (m / denom);
            expAvg[i] = m;
            expAvgSq[i] = v;
        }
    }
}

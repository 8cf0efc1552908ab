namespace AiOs.Planner.Engine.Execution;

/// <summary>What a checkpoint keeps of a <see cref="LossScaler"/>; <paramref name="Hysteresis"/> is null in checkpoints written before it was kept (then full).</summary>
public sealed record LossScaleState(double Scale, int CleanSteps, int Skipped, int? Hysteresis = null);

/// <summary>
/// Dynamic loss scaling for fp16 training, with DeepSpeed's meanings and defaults: the loss is multiplied by
/// <see cref="Scale"/> before backward so small fp16 gradients do not flush to zero; a step whose gradients
/// overflowed (an infinite or NaN norm) is skipped. The scale is halved (not below <see cref="MinScale"/>)
/// only when the overflow finds the remaining hysteresis at 1; otherwise the overflow uses one unit of it
/// (DeepSpeed's <c>hysteresis</c>, 2 by default: the first overflow after a scale increase only skips).
/// After <see cref="Window"/> steps in a row without overflow the scale doubles and the hysteresis is
/// restored; with <see cref="ConsecutiveHysteresis"/> every clean step restores it.
/// </summary>
public sealed class LossScaler
{
    private int _clean;
    private int _hysteresisLeft;

    /// <summary>Starts at <paramref name="initial"/> (DeepSpeed: 2^initial_scale_power, 2^16 by default).</summary>
    public LossScaler(double initial = 65536, int window = 1000, double minScale = 1, int hysteresis = 2, bool consecutiveHysteresis = false)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(initial, 0);
        ArgumentOutOfRangeException.ThrowIfLessThan(window, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(hysteresis, 1);
        Scale = initial;
        Window = window;
        MinScale = minScale;
        Hysteresis = hysteresis;
        ConsecutiveHysteresis = consecutiveHysteresis;
        _hysteresisLeft = hysteresis;
    }

    /// <summary>The factor the loss is multiplied by now.</summary>
    public double Scale { get; private set; }

    /// <summary>Overflow-free steps after which the scale doubles (DeepSpeed's loss_scale_window).</summary>
    public int Window { get; }

    /// <summary>The scale never drops below this (DeepSpeed's min_loss_scale).</summary>
    public double MinScale { get; }

    /// <summary>Overflows that lower the scale once (DeepSpeed's hysteresis): the first n − 1 only skip.</summary>
    public int Hysteresis { get; }

    /// <summary>Whether any clean step restores the hysteresis (DeepSpeed's consecutive_hysteresis), not only a scale increase.</summary>
    public bool ConsecutiveHysteresis { get; }

    /// <summary>Steps skipped so far because of overflow.</summary>
    public int Skipped { get; private set; }

    /// <summary>The state a checkpoint records.</summary>
    public LossScaleState State => new(Scale, _clean, Skipped, _hysteresisLeft);

    /// <summary>Continues from a checkpoint's state.</summary>
    public void Restore(LossScaleState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        Scale = state.Scale;
        _clean = state.CleanSteps;
        Skipped = state.Skipped;
        _hysteresisLeft = Math.Clamp(state.Hysteresis ?? Hysteresis, 1, Hysteresis);
    }

    /// <summary>Whether Σg² of the scaled gradients says they overflowed.</summary>
    public static bool Overflowed(double sumOfSquares) => !double.IsFinite(sumOfSquares);

    /// <summary>Records a finished backward; returns whether the update may be applied (false: skip it).</summary>
    public bool Update(bool overflow)
    {
        if (overflow)
        {
            if (_hysteresisLeft <= 1) Scale = Math.Max(MinScale, Scale / 2);
            else _hysteresisLeft--;
            _clean = 0;
            Skipped++;
            return false;
        }
        if (ConsecutiveHysteresis) _hysteresisLeft = Hysteresis;
        if (++_clean >= Window)
        {
            _hysteresisLeft = Hysteresis;
            Scale *= 2;
            _clean = 0;
        }
        return true;
    }
}

/// <summary>The multiplier each unit's accumulated gradient gets before the update: clipping and the fp16 loss scale.</summary>
internal static class GradientScales
{
    /// <summary>
    /// 1 / <paramref name="lossScale"/> per unit, times torch's clip_grad_norm_ coefficient of the unscaled norm when
    /// clipping (global: one norm over every unit's Σg²; per unit: each its own). Global clipping needs every unit's
    /// Σg²; per-unit clipping reads only the units it is asked about.
    /// </summary>
    public static float Of(int unit, IReadOnlyList<double> sumOfSquares, GradientClipping? clip, double lossScale)
    {
        if (clip is null) return (float)(1 / lossScale);
        double squares = clip.Mode == ClipMode.GlobalNorm ? sumOfSquares.Sum() : sumOfSquares[unit];
        return (float)(LayerwiseTrainer.ClipScale(Math.Sqrt(squares) / lossScale, clip.MaxNorm) / lossScale);
    }

    /// <summary><see cref="Of"/> for every unit.</summary>
    public static float[] All(IReadOnlyList<double> sumOfSquares, int units, GradientClipping? clip, double lossScale)
    {
        var scales = new float[units];
        for (int u = 0; u < units; u++) scales[u] = Of(u, sumOfSquares, clip, lossScale);
        return scales;
    }
}

using System.Globalization;

namespace AiOs.Planner.Optim;

/// <summary>What the learning rate does after its warm-up.</summary>
public enum LearningRateDecay
{
    /// <summary>Stays at the base rate (DeepSpeed's <c>WarmupLR</c>).</summary>
    Constant,
    /// <summary>Falls in a straight line to the minimum at the last step (DeepSpeed's <c>WarmupDecayLR</c>).</summary>
    Linear,
    /// <summary>Falls along half a cosine to the minimum at the last step (DeepSpeed's <c>WarmupCosineLR</c>).</summary>
    Cosine,
}

/// <summary>
/// The learning rate of each optimizer update: a linear warm-up from <see cref="MinLearningRate"/> to
/// <see cref="BaseLearningRate"/>, then constant, linear or cosine decay back to the minimum at <see cref="TotalSteps"/>.
/// The engine and the DeepSpeed config writer both read it, so a run and its emitted config agree.
/// </summary>
/// <remarks>
/// <see cref="LrAt"/> is DeepSpeed's formula (<c>deepspeed.runtime.lr_schedules</c>, <c>warmup_type: "linear"</c>) at
/// <c>last_batch_iteration</c> = the update's 1-based index, so update 1 already moves the weights. DeepSpeed sets the rate
/// after each optimizer step, so its own update t runs at the rate of iteration t − 2 (its first two at the minimum); the
/// shape is the same, two updates later. As in DeepSpeed, a scheduled warm-up spans at least 2 iterations
/// (<see cref="EffectiveWarmupSteps"/>).
/// </remarks>
public sealed record LearningRateSchedule
{
    /// <summary>The default base rate of <c>aios train</c> and of the emitted DeepSpeed config (1e-3 made a 3B model diverge in 3 steps).</summary>
    public const double DefaultLearningRate = 1e-4;

    /// <summary>The peak rate, reached at the end of the warm-up (the optimizer's <c>lr</c>).</summary>
    public double BaseLearningRate { get; init; } = DefaultLearningRate;
    /// <summary>Where the warm-up starts and the decay ends (DeepSpeed's <c>warmup_min_lr</c>, or a ratio of the base for cosine).</summary>
    public double MinLearningRate { get; init; }
    /// <summary>Updates over which the rate rises linearly from the minimum to the base; 0 with constant decay: no warm-up.</summary>
    public int WarmupSteps { get; init; }
    /// <summary>What follows the warm-up.</summary>
    public LearningRateDecay Decay { get; init; } = LearningRateDecay.Constant;
    /// <summary>The run's total updates, where linear and cosine decay reach the minimum (unused for constant).</summary>
    public int TotalSteps { get; init; }

    /// <summary>A constant rate with no warm-up: what the optimizer did before schedules existed.</summary>
    public static LearningRateSchedule Constant(double rate) => new() { BaseLearningRate = rate, MinLearningRate = rate };

    /// <summary>The warm-up DeepSpeed actually runs: <c>max(2, warmup_num_steps)</c>, or none for a constant rate without warm-up.</summary>
    public int EffectiveWarmupSteps => Decay == LearningRateDecay.Constant && WarmupSteps == 0 ? 0 : Math.Max(2, WarmupSteps);

    /// <summary>The rate of update <paramref name="step"/> (1-based; fp16 updates skipped for overflow do not count, as in DeepSpeed).</summary>
    public double LrAt(int step)
    {
        int w = EffectiveWarmupSteps;
        double min = MinLearningRate, span = BaseLearningRate - MinLearningRate;
        if (step < w) return min + span * step / w;
        switch (Decay)
        {
            case LearningRateDecay.Linear:
                return min + span * Math.Max(0.0, (double)(TotalSteps - step) / Math.Max(1.0, TotalSteps - w));
            case LearningRateDecay.Cosine:
                // DeepSpeed's real_last_step / real_total_steps, with its total one past ours (see CosineTotalSteps); past it, the minimum.
                double progress = Math.Min(1.0, (double)(step - w + 1) / (CosineTotalSteps - w));
                return min + span * (1 + Math.Cos(Math.PI * progress)) / 2;
            default:
                return BaseLearningRate;
        }
    }

    /// <summary>
    /// DeepSpeed's <c>total_num_steps</c> for cosine decay: one past <see cref="TotalSteps"/>, because its cosine reaches the
    /// minimum at iteration total − 1 and rises after it; this way the last update runs at the minimum.
    /// </summary>
    public int CosineTotalSteps => TotalSteps + 1;

    /// <summary>Each problem of the schedule, naming the flag to change; empty when none.</summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        if (!double.IsFinite(BaseLearningRate) || BaseLearningRate < 0)
            problems.Add($"--lr {Show(BaseLearningRate)}: the learning rate must be a finite number ≥ 0 (for example {Show(DefaultLearningRate)})");
        if (!double.IsFinite(MinLearningRate) || MinLearningRate < 0 || MinLearningRate > BaseLearningRate)
            problems.Add($"--min-lr {Show(MinLearningRate)}: must be a finite number from 0 to --lr ({Show(BaseLearningRate)})");
        if (WarmupSteps < 0) problems.Add($"--warmup-steps {WarmupSteps}: must be 0 or more");
        if (Decay != LearningRateDecay.Constant && TotalSteps < EffectiveWarmupSteps)
            problems.Add($"--warmup-steps {WarmupSteps}: {Decay.ToString().ToLowerInvariant()} decay needs the warm-up ({EffectiveWarmupSteps} steps; DeepSpeed warms up over at least 2) " +
                $"to end by the last step ({TotalSteps}): lower --warmup-steps, raise --steps, or use --lr-schedule constant");
        return problems;
    }

    private static string Show(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
}

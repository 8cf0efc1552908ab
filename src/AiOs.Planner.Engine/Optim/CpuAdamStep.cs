using AiOs.Planner.Optim;

namespace AiOs.Planner.Engine.Optim;

/// <summary>
/// <see cref="IOptimizerStep"/> over the project's vectorised multi-threaded <see cref="CpuAdam"/>. CpuAdam
/// takes no gradient multiplier, so a clipped update first scales the gradient into a scratch buffer
/// rented from the shared array pool; unclipped updates read the gradient in place.
/// </summary>
public sealed class CpuAdamStep : IOptimizerStep
{
    private readonly AdamHyperParameters _hp;
    private readonly AdamWOptions _options;
    private readonly int _threads;

    /// <summary>
    /// Uses <paramref name="options"/> on up to <paramref name="threads"/> threads (default: every core, or
    /// <c>AIOS_CPU_ADAM_THREADS</c> when set: an experiment's knob for schedules that update beside the GPU's host thread).
    /// </summary>
    public CpuAdamStep(AdamWOptions options, int? threads = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _hp = options.HyperParametersAt(1);
        _threads = Math.Max(1, threads ?? DefaultThreads);
    }

    /// <summary>Every core, unless <c>AIOS_CPU_ADAM_THREADS</c> names a positive count.</summary>
    private static int DefaultThreads =>
        int.TryParse(Environment.GetEnvironmentVariable("AIOS_CPU_ADAM_THREADS"), out int n) && n > 0 ? n : Environment.ProcessorCount;

    /// <inheritdoc/>
    public void Update(Span<float> master, ReadOnlySpan<float> gradient, Span<float> expAvg, Span<float> expAvgSq, int step, float gradScale) =>
        Update(master, gradient, expAvg, expAvgSq, step, gradScale, Span<ushort>.Empty);

    /// <summary>As the other overload; the bf16 copy (unless empty) is written inside CpuAdam's pass, as DeepSpeed's CPU Adam does.</summary>
    public void Update(Span<float> master, ReadOnlySpan<float> gradient, Span<float> expAvg, Span<float> expAvgSq, int step, float gradScale, Span<ushort> bf16) =>
        // The clipping or loss-scale multiplier is applied inside CpuAdam's pass (bit-identical to scaling the gradient
        // first), so a clipped update reads each gradient once and writes no scaled copy.
        Step(master, gradient, expAvg, expAvgSq, step, gradScale, bf16);

    /// <summary>As the other overloads; the fp16 copy is cast chunk by chunk inside CpuAdam's pass, while each chunk is in cache.</summary>
    public void Update(Span<float> master, ReadOnlySpan<float> gradient, Span<float> expAvg, Span<float> expAvgSq, int step, float gradScale, Span<Half> fp16) =>
        CpuAdam.Step(master, gradient, expAvg, expAvgSq, fp16, step, HyperParametersAt(step, gradScale), _threads);

    /// <summary>
    /// As <see cref="Update(Span{float}, ReadOnlySpan{float}, Span{float}, Span{float}, int, float, Span{ushort})"/> with
    /// the gradient as bf16 bits, widened as CpuAdam reads them (bit-identical to widening them first, one pass fewer).
    /// </summary>
    public void UpdateBf16Gradients(Span<float> master, ReadOnlySpan<ushort> gradient, Span<float> expAvg, Span<float> expAvgSq, int step, float gradScale, Span<ushort> bf16) =>
        CpuAdam.StepBf16Gradients(master, gradient, expAvg, expAvgSq, bf16, step, HyperParametersAt(step, gradScale), _threads);

    /// <summary>The hyper-parameters of update <paramref name="step"/>; without a schedule or a scale the same record every update (none is made per call).</summary>
    private AdamHyperParameters HyperParametersAt(int step, float gradScale)
    {
        AdamHyperParameters hp = _options.Schedule is null ? _hp : _hp with { LearningRate = (float)_options.LearningRateAt(step) };
        return gradScale != 1f ? hp with { GradientScale = gradScale } : hp;
    }

    private void Step(Span<float> master, ReadOnlySpan<float> gradient, Span<float> expAvg, Span<float> expAvgSq, int step, float gradScale, Span<ushort> bf16)
    {
        AdamHyperParameters hp = HyperParametersAt(step, gradScale);
        if (bf16.IsEmpty) CpuAdam.Step(master, gradient, expAvg, expAvgSq, step, hp, _threads);
        else CpuAdam.Step(master, gradient, expAvg, expAvgSq, bf16, step, hp, _threads);
    }
}

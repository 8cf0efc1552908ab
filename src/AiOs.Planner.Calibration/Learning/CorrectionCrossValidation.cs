using AiOs.Planner.Learning;
using MathNet.Numerics.Statistics;

namespace AiOs.Planner.Calibration.Learning;

/// <summary>One held-out run: what the simulator said, what the corrected model said, and what was measured.</summary>
public sealed record HeldOutRun(string RunId, int Fold, PhaseSeconds Measured, PhaseSeconds Uncorrected, PhaseSeconds Corrected, string? FallbackReason)
{
    /// <summary>True when the correction declined and the corrected figure is the uncorrected one.</summary>
    public bool FellBack => FallbackReason is not null;
}

/// <summary>
/// Absolute relative error |predicted − measured| ÷ measured of one quantity over held-out runs, before and
/// after the correction: the mean, and the median (which one disturbed run cannot move).
/// </summary>
public sealed record ErrorPair(string Quantity, double Uncorrected, double Corrected, double MedianUncorrected, double MedianCorrected);

/// <summary>The outcome of k-fold cross-validation of a learned correction.</summary>
public sealed record CrossValidationResult(int Folds, string Trainer, IReadOnlyList<HeldOutRun> Runs)
{
    /// <summary>Mean |predicted − measured| ÷ measured over held-out runs, for the step and each phase with a measured time.</summary>
    public IReadOnlyList<ErrorPair> Errors =>
    [
        Pair("step", r => r.Total),
        Pair("forward", r => r.Forward),
        Pair("backward", r => r.Backward),
        Pair("optimizer", r => r.Optimizer),
    ];

    /// <summary>Held-out runs for which the correction fell back to the simulator.</summary>
    public int FallBacks => Runs.Count(r => r.FellBack);

    private ErrorPair Pair(string name, Func<PhaseSeconds, double> of)
    {
        var usable = Runs.Where(r => of(r.Measured) > 0).ToList();
        if (usable.Count == 0) return new ErrorPair(name, double.NaN, double.NaN, double.NaN, double.NaN);
        var before = usable.Select(r => Math.Abs(of(r.Uncorrected) - of(r.Measured)) / of(r.Measured)).ToList();
        var after = usable.Select(r => Math.Abs(of(r.Corrected) - of(r.Measured)) / of(r.Measured)).ToList();
        return new ErrorPair(name, before.Average(), after.Average(), Statistics.Median(before), Statistics.Median(after));
    }
}

/// <summary>
/// k-fold cross-validation: each run is held out once, a correction is learned from the other folds, and the
/// held-out run's prediction is compared with its measurement, before and after the correction (with the
/// same range check, so a run outside its training folds' range counts at its uncorrected error).
/// </summary>
public static class CorrectionCrossValidation
{
    /// <summary>Runs <paramref name="folds"/>-fold cross-validation; runs are dealt to folds in a seeded random order.</summary>
    public static CrossValidationResult Run(IReadOnlyList<RunObservation> runs, int folds, LearnOptions? options = null)
    {
        options ??= new LearnOptions();
        if (folds < 2) throw new CalibrationException("Cross-validation needs at least 2 folds.");
        if (runs.Count < folds) throw new CalibrationException($"Cross-validation with {folds} folds needs at least {folds} runs; the history holds {runs.Count}.");
        var order = Enumerable.Range(0, runs.Count).ToArray();
        new Random(options.Seed).Shuffle(order);
        var foldOf = new int[runs.Count];
        for (int i = 0; i < order.Length; i++) foldOf[order[i]] = i % folds;
        var kind = CorrectionPipelines.Resolve(options.Trainer, runs.Count - runs.Count / folds);
        var held = new List<HeldOutRun>();
        for (int fold = 0; fold < folds; fold++)
        {
            var train = runs.Where((_, i) => foldOf[i] != fold).ToList();
            var spec = CorrectionLearner.Learn(train, options with { Trainer = kind });
            var correction = LearnedCorrection.Load(spec);
            for (int i = 0; i < runs.Count; i++)
            {
                if (foldOf[i] != fold) continue;
                var run = runs[i];
                var predicted = run.Features.Predicted;
                string? outside = spec.OutsideRange(run.Features);
                var verdict = outside is null ? correction.Apply(run.Features) : CorrectionVerdict.Decline("outside the history: " + outside);
                var corrected = verdict.Ratios is { } ratios ? predicted.Scaled(ratios) : predicted;
                held.Add(new HeldOutRun(run.RunId, fold, run.Measured, predicted, corrected, verdict.Reason));
            }
        }
        return new CrossValidationResult(folds, CorrectionPipelines.Name(kind), held);
    }
}

using AiOs.Planner.Hardware;
using AiOs.Planner.Simulation;
using AiOs.Planner.Units;
using MathNet.Numerics;
using MathNet.Numerics.LinearAlgebra;
using MathNet.Numerics.Optimization;

namespace AiOs.Planner.Calibration.Compute;

/// <summary>One baseline row after the fit: measured, and predicted with the starting and the fitted constants.</summary>
public sealed record EagerFitRow(EagerBaseline Baseline, EagerRole Role, double DefaultMs, double FittedMs)
{
    /// <summary>Fitted prediction ÷ measured − 1 (positive: the planner is slow).</summary>
    public double Error => FittedMs / Baseline.MedianMs - 1;
    /// <summary>Starting (default) prediction ÷ measured − 1.</summary>
    public double DefaultError => DefaultMs / Baseline.MedianMs - 1;
}

/// <summary>Median and largest |error| over some rows.</summary>
public sealed record ErrorSummary(int Count, double MedianAbs, double MaxAbs)
{
    /// <summary>The summary of <paramref name="errors"/> (relative, signed).</summary>
    public static ErrorSummary Of(IEnumerable<double> errors)
    {
        var abs = errors.Select(Math.Abs).OrderBy(e => e).ToArray();
        if (abs.Length == 0) return new ErrorSummary(0, double.NaN, double.NaN);
        double median = abs.Length % 2 == 1 ? abs[abs.Length / 2] : (abs[abs.Length / 2 - 1] + abs[abs.Length / 2]) / 2;
        return new ErrorSummary(abs.Length, median, abs[^1]);
    }
}

/// <summary>The fitted compute model and how it does on the rows it saw (fit) and the rows it did not (test).</summary>
public sealed record EagerFitResult(ComputeModel Start, ComputeModel Fitted, IReadOnlyList<EagerFitRow> Rows, EagerSplit Split, int Evaluations)
{
    /// <summary>Issue 13's target on test rows: median |error| at most this.</summary>
    public const double MedianTarget = 0.07;
    /// <summary>Issue 13's target on test rows: every |error| at most this.</summary>
    public const double MaxTarget = 0.15;

    /// <summary>Fitted errors on the fit rows.</summary>
    public ErrorSummary Fit => ErrorSummary.Of(Rows.Where(r => r.Role == EagerRole.Fit).Select(r => r.Error));
    /// <summary>Fitted errors on the test rows (never seen by the fit).</summary>
    public ErrorSummary Test => ErrorSummary.Of(Rows.Where(r => r.Role == EagerRole.Test).Select(r => r.Error));
    /// <summary>The starting constants' errors on the test rows, for comparison.</summary>
    public ErrorSummary TestWithStart => ErrorSummary.Of(Rows.Where(r => r.Role == EagerRole.Test).Select(r => r.DefaultError));
    /// <summary>Whether the test rows meet both targets.</summary>
    public bool TargetsMet => Test.MedianAbs <= MedianTarget && Test.MaxAbs <= MaxTarget;
}

/// <summary>
/// Fits the <c>deepspeed</c> executor's <see cref="ComputeModel"/> to PyTorch eager step times: MatmulHalfRateHidden,
/// ElementwiseTraffic, LayerOverhead, LayerLaunchFloor and RecomputeLaunchFloors (the checkpointed recompute's dispatch,
/// seen only in launch-bound checkpointed rows; without such fit rows it stays as given) minimise
/// Σ (predicted ÷ measured − 1)² over the fit rows only,
/// by MathNet's Nelder–Mead simplex (the step model has kinks where the launch floor takes over, so no derivatives) on
/// the constants' logarithms (so each stays positive) within physical bounds. MemoryEfficiency stays as given: it only
/// appears multiplied with ElementwiseTraffic, so fitting both is degenerate. StepOverhead stays as given too.
/// </summary>
public static class EagerBaselineFit
{
    /// <summary>Fewest fit rows: one per fitted constant.</summary>
    public const int Parameters = 5;

    // Bounds of the fitted constants: half-rate hidden size 1..100k; traffic 0.01..100 × saved bytes; overhead and floor
    // 0.1 µs..100 ms; a recompute's dispatch 0.5..5 floors (a recompute is at least most of a forward's launches, and
    // more than five would mean the floor itself is wrong).
    private static readonly double[] Lower = [1, 0.01, 0.1, 0.1, MinRecomputeFloors];
    private static readonly double[] Upper = [1e5, 100, 1e5, 1e5, MaxRecomputeFloors];

    /// <summary>The least recompute dispatch, in launch floors, the fit may choose.</summary>
    public const double MinRecomputeFloors = 0.5;
    /// <summary>The most recompute dispatch, in launch floors, the fit may choose.</summary>
    public const double MaxRecomputeFloors = 5;

    // Starting points, as shifts of every constant's logarithm: as given, halved, doubled.
    private static readonly double[] Starts = [0, -Math.Log(2), Math.Log(2)];

    /// <summary>Fits on the rows <paramref name="split"/> marks fit, starting from <paramref name="start"/>, and predicts every row.</summary>
    /// <exception cref="CalibrationException">No test rows, or fewer fit rows than constants; the message names the flag to change.</exception>
    public static EagerFitResult Fit(IReadOnlyList<EagerSetting> rows, HardwareProfile hardware, EagerSplit split, ComputeModel? start = null)
    {
        ArgumentNullException.ThrowIfNull(rows);
        start ??= ComputeModel.Default;
        var roles = rows.Select((r, i) => split.RoleOf(r.Baseline.Model, i)).ToArray();
        var fit = rows.Where((_, i) => roles[i] == EagerRole.Fit).ToArray();
        string models = string.Join(", ", rows.Select(r => r.Baseline.Model).Distinct());
        if (split.FitEvery is null && split.FitModels.Where(m => rows.All(r => r.Baseline.Model != m)).ToList() is { Count: > 0 } unknown)
            throw new CalibrationException($"--fit-models names {string.Join(", ", unknown)}, which no usable row has (the file has {models}): correct the names, or leave them out.");
        if (fit.Length == rows.Count)
            throw new CalibrationException($"All {rows.Count} usable rows are in the fit set ({split.Describe()}; the file has {models}), so nothing would test the fit: leave at least one model out of --fit-models (or use --fit-every K with K ≥ 2).");
        if (fit.Length < Parameters)
            throw new CalibrationException($"Only {fit.Length} of {rows.Count} usable rows are in the fit set ({split.Describe()}; the file has {models}); {Parameters} constants need at least {Parameters}: name more models in --fit-models, or a smaller --fit-every.");

        int evaluations = 0;
        double bestValue = double.PositiveInfinity;
        double[] best = Encode(start);
        double Objective(Vector<double> x)
        {
            evaluations++;
            var model = Decode(start, x);
            double sum = 0;
            foreach (var r in fit)
            {
                double e = EagerStepPredictor.PredictMs(r, hardware, model) / r.Baseline.MedianMs - 1;
                sum += e * e;
            }
            // The simplex may stop on its iteration limit; keep the best point it visited either way.
            if (sum < bestValue) (bestValue, best) = (sum, x.ToArray());
            return sum;
        }
        var objective = ObjectiveFunction.Value(Objective);
        // Several starts (the given constants, all halved, all doubled): the launch floor's kinks leave local minima.
        double[] origin = Encode(start);
        foreach (double shift in Starts)
        {
            var point = origin.Select(v => v + shift).ToArray();
            // Restarts from the best point of this start: a simplex collapsed along a kink often moves on from a fresh one.
            for (int round = 0; round < 3; round++)
            {
                double before = bestValue;
                try
                {
                    var found = new NelderMeadSimplex(1e-10, 400).FindMinimum(objective, Vector<double>.Build.DenseOfArray(point),
                        Vector<double>.Build.Dense(Parameters, round == 0 ? 0.3 : 0.1));
                    point = found.MinimizingPoint.ToArray();
                }
                catch (MaximumIterationsException)
                {
                    // The best point overall is kept by the objective; go on from it.
                    point = best;
                }
                if (before - bestValue <= 1e-12 * Math.Max(1, before)) break;
            }
        }
        var fitted = Decode(start, Vector<double>.Build.DenseOfArray(best));
        var result = rows.Select((r, i) => new EagerFitRow(r.Baseline, roles[i],
            EagerStepPredictor.PredictMs(r, hardware, start), EagerStepPredictor.PredictMs(r, hardware, fitted))).ToList();
        return new EagerFitResult(start, fitted, result, split, evaluations);
    }

    /// <summary>The five fitted constants of <paramref name="m"/> as logarithms (µs for the durations).</summary>
    private static double[] Encode(ComputeModel m) =>
    [
        Math.Log(Clamp(m.MatmulHalfRateHidden, 0)), Math.Log(Clamp(m.ElementwiseTraffic, 1)),
        Math.Log(Clamp(m.LayerOverhead.Nanoseconds / 1e3, 2)), Math.Log(Clamp(m.LayerLaunchFloor.Nanoseconds / 1e3, 3)),
        Math.Log(Clamp(m.RecomputeLaunchFloors, 4)),
    ];

    /// <summary><paramref name="m"/> with the five constants that <paramref name="x"/> encodes, each clamped into its bounds.</summary>
    private static ComputeModel Decode(ComputeModel m, Vector<double> x) => m with
    {
        MatmulHalfRateHidden = Clamp(Math.Exp(x[0]), 0),
        ElementwiseTraffic = Clamp(Math.Exp(x[1]), 1),
        LayerOverhead = SimDuration.FromMicroseconds(Clamp(Math.Exp(x[2]), 2)),
        LayerLaunchFloor = SimDuration.FromMicroseconds(Clamp(Math.Exp(x[3]), 3)),
        RecomputeLaunchFloors = Clamp(Math.Exp(x[4]), 4),
    };

    private static double Clamp(double value, int i) => double.IsNaN(value) ? Lower[i] : Math.Clamp(value, Lower[i], Upper[i]);
}

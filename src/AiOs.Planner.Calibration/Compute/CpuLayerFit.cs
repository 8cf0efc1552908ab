using AiOs.Planner.Units;
using MathNet.Numerics.LinearAlgebra;
using MathNet.Numerics.LinearRegression;

namespace AiOs.Planner.Calibration.Compute;

/// <summary>
/// One timed pass of a transformer unit: the forward's matmul FLOPs and saved bytes as the simulator counts
/// them, its hidden size, whether the pass was a backward (forward and recompute are not) and the seconds it took.
/// </summary>
public sealed record LayerTiming(double Flops, double SavedBytes, int Hidden, bool Backward, double Seconds, string Label = "");

/// <summary>The fitted constants of the CPU compute model and how well they explain the timings.</summary>
/// <param name="MatmulHalfRateHidden">Hidden size at which matmuls reach half the measured rate.</param>
/// <param name="SavedBytesRate">Saved bytes the element-wise work gets through per second.</param>
/// <param name="Overhead">Fixed time of one forward (backward pays twice).</param>
/// <param name="BackwardRatio">A backward's time over its forward's (2 in the GPU model: twice the FLOPs).</param>
/// <param name="Matmul">The measured matmul rate the fit held fixed.</param>
/// <param name="RSquared">R² of the fitted times against the measured ones.</param>
/// <param name="RmsRelativeError">Root mean square of (fitted − measured) ÷ measured over the samples.</param>
/// <param name="Terms">The terms the fit kept (a term that would come out negative is left out).</param>
public sealed record CpuLayerFitResult(
    double MatmulHalfRateHidden, Bandwidth SavedBytesRate, SimDuration Overhead, double BackwardRatio, FlopRate Matmul,
    double RSquared, double RmsRelativeError, IReadOnlyList<string> Terms)
{
    /// <summary>The model's time for a timing's work.</summary>
    public double Predict(LayerTiming t)
    {
        ArgumentNullException.ThrowIfNull(t);
        double matmul = t.Flops / Matmul.FlopsPerSecond * (t.Hidden + MatmulHalfRateHidden) / t.Hidden;
        double saved = SavedBytesRate.BytesPerSecond > 0 ? t.SavedBytes / SavedBytesRate.BytesPerSecond : 0;
        return (t.Backward ? BackwardRatio : 1) * (matmul + saved + Overhead.Seconds);
    }
}

/// <summary>
/// Fits <c>t = F/R · (h + K)/h + S·e + O</c> to timed forward passes, with R the measured matmul rate, then
/// the backward's time as <c>r</c> times that. For a fixed R the forward is linear in the three unknowns
/// (K, e, O), so it is solved exactly by least squares (MathNet QR) on relative errors (each row divided by its
/// measured time, so a 5 ms layer counts as much as a 500 ms head). The unknowns must be non-negative; every
/// subset of terms is tried and the best non-negative solution kept (three unknowns: seven solves). The ratio r
/// has a closed form on relative errors: Σ(p/t) / Σ(p/t)² over the backward passes, p the fitted forward.
/// </summary>
public static class CpuLayerFit
{
    private static readonly string[] TermNames = ["matmul_half_rate_hidden", "saved_bytes", "overhead"];

    /// <summary>Fits the constants; needs at least three timings with positive time and hidden size.</summary>
    public static CpuLayerFitResult Fit(IReadOnlyList<LayerTiming> timings, FlopRate matmul)
    {
        ArgumentNullException.ThrowIfNull(timings);
        if (matmul.FlopsPerSecond <= 0) throw new ArgumentException("The matmul rate must be positive.", nameof(matmul));
        var all = timings.Where(t => t.Seconds > 0 && double.IsFinite(t.Seconds) && t.Hidden > 0).ToList();
        var rows = all.Where(t => !t.Backward).ToList();
        if (rows.Count < 3) throw new ArgumentException("A fit needs at least three forward timings with a positive time.", nameof(timings));
        double r = matmul.FlopsPerSecond;
        // Columns (before the 1/t weight): K's coefficient F/(R·h), e's S, O's 1. Target t − F/R.
        double[][] features = rows.Select(t => new[] { t.Flops / (r * t.Hidden), t.SavedBytes, 1.0 }).ToArray();
        double[] target = rows.Select(t => t.Seconds - t.Flops / r).ToArray();
        double[] weight = rows.Select(t => 1 / t.Seconds).ToArray();

        // In a decoder layer both F/h and S grow as tokens × h, so the half-rate width and the saved-bytes rate
        // can trade places; only attention (tokens × seq) and the head (tokens × vocab) tell them apart. The
        // width is kept only when it explains clearly more (relative RMS error down by a point or more).
        var (withWidth, withWidthSse) = BestSubset(features, target, weight, allowWidth: true);
        var (without, withoutSse) = BestSubset(features, target, weight, allowWidth: false);
        double n = rows.Count;
        double[] best = withWidth is not null && Math.Sqrt(withWidthSse / n) <= Math.Sqrt(withoutSse / n) - WidthGain ? withWidth : without ?? withWidth ?? [0, 0, 0];
        var result = new CpuLayerFitResult(
            best[0],
            best[1] > 0 ? new Bandwidth(1 / best[1]) : new Bandwidth(0),
            SimDuration.FromSeconds(best[2]),
            2,
            matmul,
            0, 0,
            Enumerable.Range(0, 3).Where(c => best[c] > 0).Select(c => TermNames[c]).ToArray());

        var backward = all.Where(t => t.Backward).ToList();
        if (backward.Count > 0)
        {
            double num = 0, den = 0;
            foreach (var t in backward)
            {
                double q = result.Predict(t with { Backward = false }) / t.Seconds;
                num += q;
                den += q * q;
            }
            if (den > 0) result = result with { BackwardRatio = num / den };
        }
        return Score(result, all);
    }

    /// <summary>Relative RMS error the half-rate width must remove to be kept.</summary>
    private const double WidthGain = 0.01;

    /// <summary>The best non-negative least-squares solution over subsets of the terms, and its weighted SSE.</summary>
    private static (double[]? Coefficients, double Sse) BestSubset(double[][] features, double[] target, double[] weight, bool allowWidth)
    {
        double[]? best = null;
        double bestSse = double.PositiveInfinity;
        int count = target.Length;
        for (int mask = 1; mask < 8; mask++)
        {
            if (!allowWidth && (mask & 1) != 0) continue;
            int[] cols = Enumerable.Range(0, 3).Where(c => (mask & (1 << c)) != 0).ToArray();
            if (cols.Length > count) continue;
            var x = Matrix<double>.Build.Dense(count, cols.Length, (i, j) => features[i][cols[j]] * weight[i]);
            var y = Vector<double>.Build.Dense(count, i => target[i] * weight[i]);
            Vector<double> solution;
            try
            {
                solution = MultipleRegression.QR(x, y);
            }
            catch (ArgumentException)
            {
                continue; // rank-deficient: the columns do not separate on these timings
            }
            if (solution.Any(v => v < 0 || !double.IsFinite(v))) continue;
            var coefficients = new double[3];
            for (int j = 0; j < cols.Length; j++) coefficients[cols[j]] = solution[j];
            double sse = (x * solution - y).Sum(v => v * v);
            if (sse < bestSse - 1e-15) (best, bestSse) = (coefficients, sse);
        }
        return (best, best is null ? double.PositiveInfinity : bestSse);
    }

    /// <summary>R² of the times and the RMS relative error.</summary>
    private static CpuLayerFitResult Score(CpuLayerFitResult fit, List<LayerTiming> rows)
    {
        double mean = rows.Average(t => t.Seconds);
        double ssTot = rows.Sum(t => (t.Seconds - mean) * (t.Seconds - mean));
        double ssRes = rows.Sum(t => Math.Pow(fit.Predict(t) - t.Seconds, 2));
        double rel = Math.Sqrt(rows.Average(t => Math.Pow((fit.Predict(t) - t.Seconds) / t.Seconds, 2)));
        return fit with { RSquared = ssTot > 0 ? 1 - ssRes / ssTot : 1, RmsRelativeError = rel };
    }
}

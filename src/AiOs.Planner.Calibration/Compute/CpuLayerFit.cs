using AiOs.Planner.Units;
using MathNet.Numerics.LinearAlgebra;
using MathNet.Numerics.LinearRegression;

namespace AiOs.Planner.Calibration.Compute;

/// <summary>
/// One timed pass of a transformer unit: the forward's matmul FLOPs and saved bytes as the simulator counts
/// them, its hidden size, whether the pass was a backward (forward and recompute are not) and the seconds it took.
/// </summary>
/// <param name="Flops">The forward's matmul FLOPs.</param>
/// <param name="SavedBytes">The forward's saved-for-backward bytes.</param>
/// <param name="Hidden">The unit's hidden size.</param>
/// <param name="Backward">Whether the pass was a backward.</param>
/// <param name="Seconds">How long it took.</param>
/// <param name="Label">"forward", "recompute" or "backward" (free text elsewhere).</param>
/// <param name="Tokens">Tokens the pass ran over (micro-batch × sequence); 0: not known.</param>
/// <param name="MatmulTflops">
/// The measured rate of the layer's products at this pass's shape and precision (<see cref="Hardware.LayerMatmulRates"/>), which
/// its matmul term is taken against; 0: the fit's single rate (<see cref="CpuLayerFitResult.Matmul"/>).
/// </param>
public sealed record LayerTiming(double Flops, double SavedBytes, int Hidden, bool Backward, double Seconds, string Label = "", long Tokens = 0,
    double MatmulTflops = 0)
{
    /// <summary>The rate this pass's products are priced at before the efficiency: its own where measured, else <paramref name="fallback"/>.</summary>
    public double MatmulRate(FlopRate fallback) => MatmulTflops > 0 ? MatmulTflops * 1e12 : fallback.FlopsPerSecond;

    /// <summary>The products' FLOPs as the fit's single rate would see them: scaled by how much slower this shape runs.</summary>
    internal double FlopsAt(FlopRate fitRate) => Flops * (fitRate.FlopsPerSecond / MatmulRate(fitRate));
}

/// <summary>The fitted constants of the CPU compute model and how well they explain the timings.</summary>
/// <param name="MatmulEfficiency">Fraction of the matmul rate the units' matmuls reach: of each timing's own shape rate where it has one, else of <paramref name="Matmul"/>.</param>
/// <param name="SavedBytesRate">Saved bytes the element-wise work gets through per second; 0 when that term was left out.</param>
/// <param name="Overhead">Fixed time of one forward.</param>
/// <param name="BackwardRatio">A backward's time over its forward's (2 in the GPU model: twice the FLOPs).</param>
/// <param name="Matmul">The benchmark's matmul rate the efficiency refers to.</param>
/// <param name="RSquared">R² of the fitted times against the measured ones.</param>
/// <param name="RmsRelativeError">Root mean square of (fitted − measured) ÷ measured over the samples.</param>
/// <param name="Terms">The terms the fit kept (a term that would come out negative is left out; one held at its <see cref="LayerFitBounds"/> ceiling says so).</param>
public sealed record CpuLayerFitResult(
    double MatmulEfficiency, Bandwidth SavedBytesRate, SimDuration Overhead, double BackwardRatio, FlopRate Matmul,
    double RSquared, double RmsRelativeError, IReadOnlyList<string> Terms)
{
    /// <summary>The model's time for a timing's work.</summary>
    public double Predict(LayerTiming t)
    {
        ArgumentNullException.ThrowIfNull(t);
        double matmul = t.Flops / (t.MatmulRate(Matmul) * MatmulEfficiency);
        double saved = SavedBytesRate.BytesPerSecond > 0 ? t.SavedBytes / SavedBytesRate.BytesPerSecond : 0;
        return (t.Backward ? BackwardRatio : 1) * (matmul + saved + Overhead.Seconds);
    }
}

/// <summary>
/// Fits <c>t = F/(η·R) + S·e + O</c> to timed forward passes (R the benchmark's matmul rate; η, e, O unknown),
/// then a backward's time as <c>r</c> times its forward's. The forward is linear in (1/η, e, O), so it is solved
/// exactly by least squares (MathNet QR) on relative errors: each row is divided by its measured time, so a 5 ms
/// layer counts as much as a 500 ms head. The unknowns must be non-negative and the matmul term is always kept;
/// each subset of the other two is tried and the best non-negative solution kept. F grows as tokens × h² and S
/// as tokens × h, so timing several widths separates the two. The ratio r has a closed form on relative errors:
/// Σ(p/t) / Σ(p/t)² over the backward passes, p the fitted forward.
/// </summary>
public static class CpuLayerFit
{
    private static readonly string[] TermNames = ["matmul", "saved_bytes", "overhead"];

    /// <summary>
    /// Fits the constants; needs at least three forward timings with positive time and hidden size. <paramref name="bounds"/>
    /// keeps the fitted rates physical (see <see cref="LayerFitBounds"/>); none: only non-negative.
    /// </summary>
    public static CpuLayerFitResult Fit(IReadOnlyList<LayerTiming> timings, FlopRate matmul, LayerFitBounds? bounds = null)
    {
        ArgumentNullException.ThrowIfNull(timings);
        if (matmul.FlopsPerSecond <= 0) throw new ArgumentException("The matmul rate must be positive.", nameof(matmul));
        var all = timings.Where(t => t.Seconds > 0 && double.IsFinite(t.Seconds) && t.Hidden > 0).ToList();
        var rows = all.Where(t => !t.Backward).ToList();
        if (rows.Count < 3) throw new ArgumentException("A fit needs at least three forward timings with a positive time.", nameof(timings));
        if (rows.All(t => t.Flops <= 0)) throw new ArgumentException("A fit needs timings with matmul work.", nameof(timings));

        var limits = Limits(bounds, matmul);
        double[] best = BestSubset(rows, limits, matmul);
        double[] ceiling = [limits.Flop, limits.Byte, 0];
        var result = new CpuLayerFitResult(
            1 / (best[0] * matmul.FlopsPerSecond),
            best[1] > 0 ? new Bandwidth(1 / best[1]) : new Bandwidth(0),
            SimDuration.FromSeconds(best[2]),
            2,
            matmul,
            0, 0,
            Enumerable.Range(0, 3).Where(c => best[c] > 0).Select(c => best[c] == ceiling[c] ? TermNames[c] + " (at its ceiling)" : TermNames[c]).ToArray());

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

    /// <summary>
    /// Smallest allowed seconds per FLOP and per saved byte (a rate's ceiling); 0: no ceiling.
    /// </summary>
    private static (double Flop, double Byte) Limits(LayerFitBounds? bounds, FlopRate matmul) => bounds is null ? (0, 0) : (
        bounds.MaxMatmulEfficiency is { } eta ? 1 / (eta * matmul.FlopsPerSecond) : 0,
        bounds.MaxSavedBytesRate is { } rate ? 1 / rate.BytesPerSecond : 0);

    /// <summary>
    /// Coefficients (seconds per FLOP, seconds per saved byte, seconds) of the best fit within the limits: least squares
    /// with inequality bounds, solved exactly by trying every active set. Each column is free (solved, then checked against
    /// its bound), held at its bound (moved to the right-hand side), or — the saved-bytes and overhead terms — left out.
    /// With no limits this is the non-negative subset search it replaced (the matmul term always kept).
    /// </summary>
    private static double[] BestSubset(List<LayerTiming> rows, (double Flop, double Byte) min, FlopRate matmul)
    {
        double[]? best = null;
        double bestSse = double.PositiveInfinity;
        int count = rows.Count;
        // States per column: 0 left out, 1 free, 2 at its bound. The matmul term is never left out.
        int[][] states = [min.Flop > 0 ? [1, 2] : [1], min.Byte > 0 ? [0, 1, 2] : [0, 1], [0, 1]];
        foreach (int s0 in states[0])
        foreach (int s1 in states[1])
        foreach (int s2 in states[2])
        {
            int[] state = [s0, s1, s2];
            double[] bound = [min.Flop, min.Byte, 0];
            int[] free = Enumerable.Range(0, 3).Where(c => state[c] == 1).ToArray();
            if (free.Length > count) continue;
            var y = Vector<double>.Build.Dense(count, i => 1.0 - Enumerable.Range(0, 3).Where(c => state[c] == 2).Sum(c => bound[c] * Feature(rows[i], c, matmul)) / rows[i].Seconds);
            var coefficients = new double[3];
            for (int c = 0; c < 3; c++) if (state[c] == 2) coefficients[c] = bound[c];
            if (free.Length > 0)
            {
                var x = Matrix<double>.Build.Dense(count, free.Length, (i, j) => Feature(rows[i], free[j], matmul) / rows[i].Seconds);
                Vector<double> solution;
                try
                {
                    solution = MultipleRegression.QR(x, y);
                }
                catch (ArgumentException)
                {
                    continue; // rank-deficient: the columns do not separate on these timings
                }
                if (solution.Any(v => !double.IsFinite(v))) continue;
                bool within = true;
                for (int j = 0; j < free.Length; j++)
                {
                    coefficients[free[j]] = solution[j];
                    within &= solution[j] >= bound[free[j]] && (free[j] != 0 || solution[j] > 0);
                }
                if (!within) continue;
            }
            double sse = 0;
            for (int i = 0; i < count; i++)
            {
                double fitted = Enumerable.Range(0, 3).Sum(c => coefficients[c] * Feature(rows[i], c, matmul)) / rows[i].Seconds;
                sse += (fitted - 1) * (fitted - 1);
            }
            if (sse < bestSse - 1e-15) (best, bestSse) = (coefficients, sse);
        }
        return best ?? throw new ArgumentException("No non-negative fit: the timings do not grow with the matmul work.", nameof(rows));
    }

    /// <summary>A row's column: the matmul column counts FLOPs at the fit's rate (a pass with its own measured rate scaled to it).</summary>
    private static double Feature(LayerTiming t, int column, FlopRate matmul) => column switch
    {
        0 => t.FlopsAt(matmul),
        1 => t.SavedBytes,
        _ => 1.0,
    };

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

/// <summary>
/// Ceilings that keep a layer fit physical. Over few widths the matmul and saved-bytes terms are nearly collinear, and
/// an unbounded least squares can trade one for the other (the H100's engine kernels came out at 6.5 × the measured matmul
/// rate with the element-wise term carrying the time, 2026-12-05), which then misprices any precision whose matmul rate
/// differs (fp32 steps ran 2.7 × the prediction).
/// </summary>
/// <param name="MaxMatmulEfficiency">The units' matmuls cannot beat this fraction of the rate each timing's matmul term refers to: its own shape's measured rate (<see cref="LayerTiming.MatmulTflops"/>) where it has one, else the benchmark's large-matmul rate (1: that rate).</param>
/// <param name="MaxSavedBytesRate">The element-wise work cannot move bytes faster than this (the device's memory bandwidth).</param>
public sealed record LayerFitBounds(double? MaxMatmulEfficiency, Bandwidth? MaxSavedBytesRate);

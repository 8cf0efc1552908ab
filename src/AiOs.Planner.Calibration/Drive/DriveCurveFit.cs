using AiOs.Planner.Hardware;
using AiOs.Planner.Units;
using MathNet.Numerics.LinearAlgebra;
using MathNet.Numerics.Optimization;

namespace AiOs.Planner.Calibration.Drive;

/// <summary>A fitted throughput curve (see <see cref="DriveDirection"/>) and how well it fits.</summary>
public sealed record DriveCurve(double PeakGbps, double HalfInflightKib, double? HalfBlockKib, double RSquared, double RmseGbps)
{
    /// <summary>The model's prediction, GB/s, for one sample's settings.</summary>
    public double Predict(DriveSample s) => DriveCurveFit.Model(PeakGbps, HalfInflightKib, HalfBlockKib ?? 0, s);
}

/// <summary>
/// Fits <c>peak · x/(x + h) · b/(b + c)</c> (x bytes in flight, b block size) to drive samples by least
/// squares: a coarse grid over h and c (peak has a closed form for each), refined by MathNet's
/// Levenberg–Marquardt. The per-request term c is kept only when it explains clearly more (R² up by
/// 0.02 or more), so a drive without a request-rate limit gets the simpler two-parameter curve.
/// </summary>
public static class DriveCurveFit
{
    internal static double Model(double peak, double halfInflightKib, double halfBlockKib, DriveSample s)
    {
        double x = (double)s.BlockSize * s.QueueDepth * s.Threads / Bytes.KiBValue;
        double b = s.BlockSize / (double)Bytes.KiBValue;
        return peak * x / (x + halfInflightKib) * b / (b + halfBlockKib);
    }

    /// <summary>Fits the curve; needs at least two samples with a positive rate.</summary>
    public static DriveCurve Fit(IReadOnlyList<DriveSample> samples)
    {
        ArgumentNullException.ThrowIfNull(samples);
        var usable = samples.Where(s => s.Gbps > 0 && double.IsFinite(s.Gbps)).ToList();
        if (usable.Count < 2) throw new ArgumentException("A curve needs at least two samples with a positive rate.", nameof(samples));
        var two = FitWith(usable, withBlockTerm: false);
        if (usable.Count < 4) return two;
        var three = FitWith(usable, withBlockTerm: true);
        return three.RSquared >= two.RSquared + 0.02 ? three : two;
    }

    private static DriveCurve FitWith(List<DriveSample> samples, bool withBlockTerm)
    {
        var (h0, c0) = GridSearch(samples, withBlockTerm);
        var (h, c) = Refine(samples, h0, c0, withBlockTerm);
        if (Sse(samples, h, c) > Sse(samples, h0, c0)) (h, c) = (h0, c0);
        double peak = BestPeak(samples, h, c);
        return Score(samples, peak, h, withBlockTerm ? c : null);
    }

    /// <summary>For fixed shape parameters the model is linear in peak: peak = Σ y·f / Σ f².</summary>
    private static double BestPeak(List<DriveSample> samples, double h, double c)
    {
        double num = 0, den = 0;
        foreach (var s in samples)
        {
            double f = Model(1, h, c, s);
            num += s.Gbps * f;
            den += f * f;
        }
        return den > 0 ? num / den : 0;
    }

    private static double Sse(List<DriveSample> samples, double h, double c)
    {
        double peak = BestPeak(samples, h, c);
        return samples.Sum(s => Math.Pow(s.Gbps - Model(peak, h, c, s), 2));
    }

    private static (double H, double C) GridSearch(List<DriveSample> samples, bool withBlockTerm)
    {
        // h from 0 (flat) to 1 TiB... in practice 1 KiB–16 GiB in flight; c from 0 to 64 MiB per block.
        double[] hs = [0, .. Enumerable.Range(0, 49).Select(i => Math.Pow(2, i * 0.5))];
        double[] cs = withBlockTerm ? [0, .. Enumerable.Range(0, 33).Select(i => Math.Pow(2, i * 0.5))] : [0];
        (double H, double C, double Sse) best = (0, 0, double.MaxValue);
        foreach (double h in hs)
            foreach (double c in cs)
            {
                double e = Sse(samples, h, c);
                if (e < best.Sse) best = (h, c, e);
            }
        return (best.H, best.C);
    }

    /// <summary>Levenberg–Marquardt on log(1 + h) and log(1 + c), which keeps both non-negative and well scaled.</summary>
    private static (double H, double C) Refine(List<DriveSample> samples, double h0, double c0, bool withBlockTerm)
    {
        var index = Vector<double>.Build.Dense(samples.Count, i => i);
        var observed = Vector<double>.Build.Dense(samples.Count, i => samples[i].Gbps);
        Vector<double> Predict(Vector<double> p, Vector<double> x)
        {
            double h = Math.Exp(p[1]) - 1, c = withBlockTerm ? Math.Exp(p[2]) - 1 : 0;
            return Vector<double>.Build.Dense(x.Count, i => Model(p[0], h, c, samples[(int)x[i]]));
        }
        try
        {
            var objective = ObjectiveFunction.NonlinearModel(Predict, index, observed);
            var start = Vector<double>.Build.DenseOfArray([BestPeak(samples, h0, c0), Math.Log(1 + h0), Math.Log(1 + c0)]);
            var isFixed = new List<bool> { false, false, !withBlockTerm };
            var result = new LevenbergMarquardtMinimizer(maximumIterations: 200).FindMinimum(objective, start, isFixed: isFixed);
            var p = result.MinimizingPoint;
            double h = Math.Exp(p[1]) - 1, c = withBlockTerm ? Math.Exp(p[2]) - 1 : 0;
            return double.IsFinite(h) && double.IsFinite(c) && h >= 0 && c >= 0 ? (h, c) : (h0, c0);
        }
        catch (Exception e) when (e is MaximumIterationsException or ArithmeticException or ArgumentException)
        {
            return (h0, c0);
        }
    }

    private static DriveCurve Score(List<DriveSample> samples, double peak, double h, double? c)
    {
        double mean = samples.Average(s => s.Gbps);
        double ssRes = samples.Sum(s => Math.Pow(s.Gbps - Model(peak, h, c ?? 0, s), 2));
        double ssTot = samples.Sum(s => Math.Pow(s.Gbps - mean, 2));
        double r2 = ssTot > 0 ? 1 - ssRes / ssTot : 1;
        return new DriveCurve(peak, h, c, r2, Math.Sqrt(ssRes / samples.Count));
    }
}

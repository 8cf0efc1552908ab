using MathNet.Numerics.LinearRegression;

namespace AiOs.Planner.Calibration.Host;

/// <summary>One timing of a call: <see cref="Elements"/> updated in <see cref="Seconds"/> (a median of repeated calls).</summary>
/// <param name="Elements">Elements the call updated.</param>
/// <param name="Seconds">Wall seconds the call took.</param>
public readonly record struct CallTiming(long Elements, double Seconds);

/// <summary>
/// A call's time as a fixed cost plus a cost per element, <c>t = a + b·n</c>, fitted to timings over a range of sizes
/// (CPU Adam on sub-groups from thousands to tens of millions of elements, issue 13).
/// </summary>
/// <param name="PerCallSeconds">a: seconds every call costs whatever its size (never negative).</param>
/// <param name="SecondsPerElement">b: seconds per element updated.</param>
public sealed record CallCostFit(double PerCallSeconds, double SecondsPerElement)
{
    /// <summary>Elements per second at the margin (1 / b).</summary>
    public double ElementsPerSecond => 1 / SecondsPerElement;

    /// <summary>The fitted time of a call over <paramref name="elements"/> elements.</summary>
    public double Seconds(long elements) => PerCallSeconds + SecondsPerElement * elements;

    /// <summary>
    /// Least squares on the relative error, Σ((a + b·nᵢ − tᵢ) / tᵢ)²: sizes span four orders of magnitude, and plain
    /// least squares would let the largest calls decide <c>a</c>, which is then a small difference of large times. Weighting
    /// each point by 1/tᵢ asks every size to be fitted to the same fraction, so the small calls (mostly <c>a</c>) pin
    /// <c>a</c> and the large ones (mostly <c>b·n</c>) pin <c>b</c>. A negative <c>a</c> (noise when the fixed cost is
    /// far below the smallest call) is clamped to 0 and <c>b</c> refitted alone (MathNet's weighted regression, both times).
    /// </summary>
    /// <exception cref="ArgumentException">Fewer than two distinct sizes, or a time that is not positive.</exception>
    public static CallCostFit Fit(IReadOnlyList<CallTiming> timings)
    {
        ArgumentNullException.ThrowIfNull(timings);
        if (timings.Any(t => !(t.Seconds > 0) || double.IsInfinity(t.Seconds) || t.Elements < 1))
            throw new ArgumentException("Every timing needs at least one element and a positive, finite time.", nameof(timings));
        if (timings.Select(t => t.Elements).Distinct().Count() < 2)
            throw new ArgumentException("Fitting a per-call and a per-element cost needs timings at two or more sizes.", nameof(timings));
        double[][] x = [.. timings.Select(t => new[] { (double)t.Elements })];
        double[] y = [.. timings.Select(t => t.Seconds)], w = [.. timings.Select(t => 1 / (t.Seconds * t.Seconds))];
        double[] ab = WeightedRegression.Weighted(x, y, w, intercept: true);
        double a = ab[0], b = ab[1];
        if (a < 0) (a, b) = (0, WeightedRegression.Weighted(x, y, w, intercept: false)[0]);
        return new CallCostFit(a, b);
    }
}

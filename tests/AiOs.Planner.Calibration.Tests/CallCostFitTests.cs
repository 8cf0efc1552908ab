using AiOs.Planner.Calibration.Host;

namespace AiOs.Planner.Calibration.Tests;

/// <summary><see cref="CallCostFit"/>: a call's fixed cost and its cost per element recovered from timings over sizes (issue 13).</summary>
public class CallCostFitTests
{
    private static readonly long[] Sizes = [16L << 10, 64L << 10, 256L << 10, 1L << 20, 4L << 20, 16L << 20];

    [Theory]
    [InlineData(1.2e-3, 1 / 4.8e9)]   // the H100 VM's two-point estimate: 1.2 ms per call, 4.8 G params/s
    [InlineData(5e-6, 1 / 2.0e9)]     // a few microseconds, far below the smallest call's time
    [InlineData(0, 1 / 2.0e9)]
    public void Given_exact_timings_When_fitted_Then_a_and_b_are_recovered(double a, double b)
    {
        var fit = CallCostFit.Fit(Sizes.Select(n => new CallTiming(n, a + b * n)).ToList());

        Assert.Equal(a, fit.PerCallSeconds, 1e-9);
        Assert.Equal(b, fit.SecondsPerElement, b * 1e-6);
    }

    [Fact]
    public void Given_timings_with_seeded_noise_When_fitted_Then_a_and_b_are_within_a_few_percent()
    {
        const double a = 40e-6, b = 1 / 3e9;
        var rng = new Random(13);
        // ±5 % on every time, as a loaded machine's medians wander.
        var timings = Sizes.SelectMany(n => Enumerable.Range(0, 3).Select(_ => new CallTiming(n, (a + b * n) * (1 + 0.1 * (rng.NextDouble() - 0.5))))).ToList();

        var fit = CallCostFit.Fit(timings);

        Assert.InRange(fit.PerCallSeconds, a * 0.9, a * 1.1);
        Assert.InRange(fit.SecondsPerElement, b * 0.95, b * 1.05);
        Assert.InRange(fit.ElementsPerSecond, 3e9 / 1.05, 3e9 / 0.95);
    }

    [Fact]
    public void Given_noise_that_would_make_a_negative_When_fitted_Then_a_is_zero_and_b_fits_alone()
    {
        const double b = 1 / 2e9;
        // The small calls a little faster than proportional: an unclamped fit would give a < 0.
        var timings = Sizes.Select(n => new CallTiming(n, b * n * (n < 1 << 20 ? 0.9 : 1.0))).ToList();

        var fit = CallCostFit.Fit(timings);

        Assert.Equal(0, fit.PerCallSeconds);
        Assert.InRange(fit.SecondsPerElement, b * 0.9, b * 1.0);
    }

    [Fact]
    public void Given_one_size_only_When_fitted_Then_the_error_asks_for_two()
    {
        var e = Assert.Throws<ArgumentException>(() => CallCostFit.Fit([new CallTiming(1000, 1e-6), new CallTiming(1000, 2e-6)]));
        Assert.Contains("two or more sizes", e.Message);
    }

    [Fact]
    public void Given_a_timing_that_is_not_positive_When_fitted_Then_it_is_refused()
    {
        Assert.Throws<ArgumentException>(() => CallCostFit.Fit([new CallTiming(1000, 0), new CallTiming(2000, 1e-6)]));
    }

    [Fact]
    public void Given_the_probe_When_it_times_small_calls_Then_each_size_has_a_positive_median_and_the_fit_is_finite()
    {
        var timings = AdamCallProbe.Measure(AdamProbeKernel.Bf16Gradients, [4096, 65_536, 262_144], 300_000, 2, TimeSpan.FromMilliseconds(10), CancellationToken.None);

        Assert.Equal([4096L, 65_536L, 262_144L], timings.Select(t => t.Elements));
        Assert.All(timings, t => Assert.True(t.Seconds > 0 && double.IsFinite(t.Seconds)));
        var fit = CallCostFit.Fit(timings);
        Assert.True(fit.PerCallSeconds >= 0 && double.IsFinite(fit.SecondsPerElement) && fit.SecondsPerElement > 0);
    }
}

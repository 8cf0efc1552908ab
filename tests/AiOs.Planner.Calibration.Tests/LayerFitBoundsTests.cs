using AiOs.Planner.Calibration.Compute;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Tests;

public class LayerFitBoundsTests
{
    private static readonly FlopRate Rate = new(120e9);
    private static readonly int[] Widths = [256, 512, 768, 1024], TokenCounts = [128, 512];

    /// <summary>Forward passes over four widths and two token counts whose times follow <c>F/(η·R) + S/e + O</c> exactly.</summary>
    private static List<LayerTiming> Passes(double efficiency, double savedGbps, double overheadUs) =>
        (from h in Widths
         from tokens in TokenCounts
         let flops = 2.0 * tokens * 12.0 * h * h
         let saved = 30.0 * h * tokens * 4
         select new LayerTiming(flops, saved, h, Backward: false,
             flops / (Rate.FlopsPerSecond * efficiency) + saved / (savedGbps * 1e9) + overheadUs / 1e6)).ToList();

    [Fact]
    public void Given_timings_faster_than_the_matmul_benchmark_When_fitted_with_a_ceiling_Then_the_efficiency_stays_at_it()
    {
        // Times that only a matmul 3 × faster than the benchmark explains: unbounded, the fit says so.
        var timings = Passes(efficiency: 3, savedGbps: 8, overheadUs: 50);
        Assert.Equal(3, CpuLayerFit.Fit(timings, Rate).MatmulEfficiency, 1e-6);

        var bounded = CpuLayerFit.Fit(timings, Rate, new LayerFitBounds(1.0, null));

        Assert.Equal(1.0, bounded.MatmulEfficiency, 1e-9);
        Assert.Contains("matmul (at its ceiling)", bounded.Terms);
        Assert.True(bounded.RmsRelativeError > 1e-6, "held at its ceiling, the fit no longer reproduces the times exactly");
    }

    [Fact]
    public void Given_an_element_wise_rate_above_the_memory_When_fitted_with_that_ceiling_Then_the_rate_is_the_memory_s()
    {
        var timings = Passes(efficiency: 0.5, savedGbps: 900, overheadUs: 50);

        var bounded = CpuLayerFit.Fit(timings, Rate, new LayerFitBounds(null, Bandwidth.FromGBps(300)));

        Assert.True(bounded.SavedBytesRate.GBps <= 300 + 1e-6 || bounded.SavedBytesRate.BytesPerSecond == 0,
            $"saved-bytes rate {bounded.SavedBytesRate.GBps} GB/s above the 300 GB/s ceiling");
        Assert.True(bounded.MatmulEfficiency <= 0.5 + 1e-3, "the element-wise time the ceiling takes away is not given to the matmul");
    }

    [Fact]
    public void Given_physical_timings_When_fitted_with_ceilings_Then_the_fit_is_the_unbounded_one()
    {
        var timings = Passes(efficiency: 0.6, savedGbps: 40, overheadUs: 120);

        var bounded = CpuLayerFit.Fit(timings, Rate, new LayerFitBounds(1.0, Bandwidth.FromGBps(3000)));

        Assert.Equal(0.6, bounded.MatmulEfficiency, 1e-6);
        Assert.Equal(40, bounded.SavedBytesRate.GBps, 1e-4);
        Assert.Equal(120e-6, bounded.Overhead.Seconds, 1e-8);
        Assert.Equal(["matmul", "saved_bytes", "overhead"], bounded.Terms);
    }
}

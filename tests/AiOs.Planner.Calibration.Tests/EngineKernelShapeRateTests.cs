using AiOs.Planner.Calibration.Compute;
using AiOs.Planner.Hardware;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Tests;

/// <summary>
/// The engine's layer fit taken against the layer products' measured rate at each pass's shape (<see cref="LayerMatmulRates"/>):
/// a layer whose products run below the large-matmul rate at small shapes is not read as a faster element-wise term or a
/// smaller overhead, and the kernels carry the table the efficiency refers to.
/// </summary>
public class EngineKernelShapeRateTests
{
    private static readonly FlopRate Large = FlopRate.FromTflops(800);

    /// <summary>bf16 products' rate per shape: 0.45 of the large rate at (768, 2048), rising to 0.9 at (2048, 8192); fp32 at a tenth.</summary>
    private static LayerMatmulRates Rates()
    {
        int[] hidden = [768, 1280, 2048];
        long[] tokens = [2048, 4096, 8192];
        var points = new List<LayerMatmulPoint>();
        for (int i = 0; i < hidden.Length; i++)
            for (int j = 0; j < tokens.Length; j++)
            {
                double share = 0.45 + 0.15 * i + 0.075 * j;
                points.Add(new LayerMatmulPoint { Hidden = hidden[i], Tokens = tokens[j], Bf16Tflops = 800 * share, Fp32Tflops = 80 * share });
            }
        return new LayerMatmulRates { Method = "synthetic", Date = "2026-12-07", Points = points };
    }

    /// <summary>Timings of layers whose products run at 0.8 of the table's rate for their shape, 900 GB/s of saved bytes, 15 µs, backward 2.2×.</summary>
    private static EngineKernelTimings Timings(LayerMatmulRates rates)
    {
        var passes = new List<LayerTiming>();
        foreach (var p in rates.Points)
        {
            double flops = 2.0 * p.Tokens * 12 * p.Hidden * p.Hidden, saved = 40.0 * p.Hidden * p.Tokens;
            double rate = rates.RateAt(Precision.Bf16, p.Hidden, p.Tokens)!.Value.FlopsPerSecond;
            double forward = flops / (rate * 0.8) + saved / 900e9 + 15e-6;
            passes.Add(new LayerTiming(flops, saved, p.Hidden, false, forward, "forward", p.Tokens));
            passes.Add(new LayerTiming(flops, saved, p.Hidden, false, 1.1 * forward, "recompute", p.Tokens));
            passes.Add(new LayerTiming(flops, saved, p.Hidden, true, 2.2 * forward, "backward", p.Tokens));
        }
        return new EngineKernelTimings(passes, FloorSeconds: 50e-6, OptimizerSeconds: 1e-3, OptimizerElements: 100_000_000, Large, "synthetic",
            LayerMatmul: rates, Precision: Precision.Bf16);
    }

    [Fact]
    public void Given_timings_of_products_slower_at_small_shapes_When_fitted_against_the_shape_rates_Then_every_constant_is_recovered_and_the_table_kept()
    {
        var fit = EngineKernelFit.Fit(Timings(Rates()), "2026-12-07");

        var k = fit.Kernels;
        Assert.Equal(0.8, k.MatmulEfficiency.Value, 3);
        Assert.Equal(900, k.SavedBytesGbps.Value, 0);
        Assert.Equal(15, k.LayerOverheadUs.Value, 1);
        Assert.Equal(9, k.LayerMatmul!.Points.Count);
        Assert.Contains("layer_matmul", k.MatmulEfficiency.Provenance!.Method);
        // Against the large rate the layers reach less: the shape rates' FLOP-weighted harmonic mean over it (0.45–0.9 of it here).
        var forwards = Timings(Rates()).Passes.Where(p => p.Label != "recompute").ToList();
        double harmonic = forwards.Sum(p => p.Flops) / forwards.Sum(p => p.Flops / (Rates().RateAt(Precision.Bf16, p.Hidden, p.Tokens)!.Value.FlopsPerSecond));
        Assert.Equal(0.8 * harmonic / Large.FlopsPerSecond, k.LargeMatmulEfficiency!.Value, 3);
        // The passes as fitted carry their shape's rate, and the fit reproduces them.
        Assert.All(fit.Passes, p => Assert.True(p.MatmulTflops > 0));
        Assert.All(fit.Passes.Where(p => p.Label == "forward"), p => Assert.Equal(p.Seconds, fit.Fit.Predict(p), p.Seconds * 1e-4));
    }

    [Fact]
    public void Given_the_same_timings_fitted_against_the_large_rate_alone_When_compared_Then_that_fit_misses_them_and_carries_no_table()
    {
        var t = Timings(Rates()) with { LayerMatmul = null };

        var fit = EngineKernelFit.Fit(t, "2026-12-07");

        Assert.Null(fit.Kernels.LayerMatmul);
        Assert.Null(fit.Kernels.LargeMatmulEfficiency);
        Assert.True(fit.Fit.RmsRelativeError > 0.01, $"RMS {fit.Fit.RmsRelativeError:P2}: one rate should not explain products whose rate varies with the shape");
    }

    [Fact]
    public void Given_a_table_without_the_fits_precision_When_fitted_Then_the_large_rate_is_used_and_no_table_is_written()
    {
        var rates = Rates();
        var fp32Only = rates with { Points = rates.Points.Select(p => p with { Bf16Tflops = null }).ToList() };

        var fit = EngineKernelFit.Fit(Timings(rates) with { LayerMatmul = fp32Only }, "2026-12-07");

        Assert.Null(fit.Kernels.LayerMatmul);
        Assert.All(fit.Passes, p => Assert.Equal(0, p.MatmulTflops));
    }

    [Fact]
    public void Given_a_pass_without_its_tokens_When_fitted_with_the_table_Then_every_pass_refers_to_the_large_rate_and_no_table_is_written()
    {
        var t = Timings(Rates());
        var passes = t.Passes.Select((p, i) => i == 0 ? p with { Tokens = 0 } : p).ToList();

        var fit = EngineKernelFit.Fit(t with { Passes = passes }, "2026-12-07");

        Assert.Null(fit.Kernels.LayerMatmul);
        Assert.All(fit.Passes, p => Assert.Equal(0, p.MatmulTflops));
    }
}

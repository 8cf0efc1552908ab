using AiOs.Planner.Calibration.Compute;
using AiOs.Planner.Hardware;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Tests;

public class CpuLayerFitTests
{
    private static readonly FlopRate Rate = new(120e9);

    /// <summary>Passes of layers of several widths and token counts whose times follow the model exactly.</summary>
    /// <remarks>With <paramref name="separable"/>, saved bytes grow with tokens² as well (an attention matrix), so
    /// they are not proportional to F/h and the half-rate width can be told apart from the saved-bytes rate.</remarks>
    private static List<LayerTiming> Exact(double halfRate, double savedGbps, double overheadUs, double backwardRatio, double noise = 0, int seed = 7, bool separable = true)
    {
        var random = new Random(seed);
        var timings = new List<LayerTiming>();
        foreach (int h in new[] { 256, 512, 768, 1024 })
            foreach (int tokens in new[] { 128, 512, 1024 })
            {
                double flops = 2.0 * tokens * 12.0 * h * h;
                double saved = 30.0 * h * tokens * 4 + (separable ? 48.0 * tokens * tokens : 0);
                double forward = flops / Rate.FlopsPerSecond * (h + halfRate) / h + saved / (savedGbps * 1e9) + overheadUs / 1e6;
                double Noisy(double t) => t * (1 + noise * (2 * random.NextDouble() - 1));
                timings.Add(new LayerTiming(flops, saved, h, Backward: false, Noisy(forward)));
                timings.Add(new LayerTiming(flops, saved, h, Backward: true, Noisy(forward * backwardRatio)));
            }
        return timings;
    }

    [Fact]
    public void Given_exact_timings_When_fitted_Then_every_constant_is_recovered()
    {
        var fit = CpuLayerFit.Fit(Exact(halfRate: 150, savedGbps: 4, overheadUs: 300, backwardRatio: 1.5), Rate);

        Assert.Equal(150, fit.MatmulHalfRateHidden, 1);
        Assert.Equal(4, fit.SavedBytesRate.GBps, 0.01);
        Assert.Equal(300e-6, fit.Overhead.Seconds, 1e-6);
        Assert.Equal(1.5, fit.BackwardRatio, 1e-6);
        Assert.True(fit.RmsRelativeError < 1e-6);
        Assert.Equal(["matmul_half_rate_hidden", "saved_bytes", "overhead"], fit.Terms);
    }

    [Fact]
    public void Given_matmuls_faster_in_layers_than_the_benchmark_When_fitted_Then_no_term_goes_negative()
    {
        // Layers at 1.2× the benchmark rate would need a negative half-rate width; the fit leaves that term out.
        var timings = Exact(halfRate: 0, savedGbps: 5, overheadUs: 200, backwardRatio: 2)
            .Select(t => t with { Seconds = t.Seconds - t.Flops / Rate.FlopsPerSecond * (t.Backward ? 2 : 1) / 6 }).ToList();
        var fit = CpuLayerFit.Fit(timings, Rate);

        Assert.Equal(0, fit.MatmulHalfRateHidden);
        Assert.True(fit.SavedBytesRate.BytesPerSecond >= 0);
        Assert.True(fit.Overhead.Seconds >= 0);
        Assert.DoesNotContain("matmul_half_rate_hidden", fit.Terms);
    }

    [Fact]
    public void Given_noisy_timings_When_fitted_Then_predictions_stay_within_the_noise()
    {
        var timings = Exact(halfRate: 80, savedGbps: 6, overheadUs: 150, backwardRatio: 1.6, noise: 0.05);
        var fit = CpuLayerFit.Fit(timings, Rate);

        Assert.All(timings, t => Assert.InRange(fit.Predict(t), t.Seconds * 0.88, t.Seconds * 1.12));
        Assert.InRange(fit.BackwardRatio, 1.5, 1.7);
    }

    [Fact]
    public void Given_layers_where_width_and_saved_bytes_cannot_be_told_apart_When_fitted_Then_the_simpler_model_is_kept_and_predicts_as_well()
    {
        var timings = Exact(halfRate: 150, savedGbps: 4, overheadUs: 300, backwardRatio: 1.5, separable: false);
        var fit = CpuLayerFit.Fit(timings, Rate);

        Assert.Equal(0, fit.MatmulHalfRateHidden);
        Assert.True(fit.RmsRelativeError < 1e-6);
    }

    [Fact]
    public void Given_too_few_forward_timings_When_fitted_Then_it_refuses()
    {
        var two = Exact(100, 5, 100, 2).Where(t => !t.Backward).Take(2).ToList();

        Assert.Throws<ArgumentException>(() => CpuLayerFit.Fit(two, Rate));
    }

    [Fact]
    public void Given_a_profile_with_drives_When_the_compute_calibration_is_applied_Then_only_the_cpu_compute_figures_change()
    {
        var profile = ProfileCatalog.Default.Load("ci-2core-24gb-calibrated");
        var fit = CpuLayerFit.Fit(Exact(150, 4, 300, 1.5), Rate);
        var updated = CpuComputeProfile.Apply(profile, new CpuComputeCalibration(120, 400, 2, fit, 16, "gpt2"), "2026-11-28");

        Assert.Equal(profile.Drives, updated.Drives);
        Assert.Equal(profile.Cpu.AdamParamsPerS, updated.Cpu.AdamParamsPerS);
        Assert.Equal(profile.Cpu.MemoryBandwidthGbps, updated.Cpu.MemoryBandwidthGbps);
        Assert.Equal(120, updated.Cpu.MatmulGflops!.Value);
        Assert.Equal(FigureSource.Measured, updated.Cpu.LayerCompute!.SavedBytesGbps.Provenance!.Source);
        Assert.Equal("2026-11-28", updated.Cpu.LayerCompute.BackwardRatio.Provenance!.Date);
        Assert.Equal(1.5, updated.Cpu.LayerCompute.BackwardRatio.Value, 1e-3);
    }
}

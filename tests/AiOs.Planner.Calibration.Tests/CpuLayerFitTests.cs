using AiOs.Planner.Calibration.Compute;
using AiOs.Planner.Hardware;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Tests;

public class CpuLayerFitTests
{
    private static readonly FlopRate Rate = new(120e9);

    /// <summary>Passes of layers of several widths and token counts whose times follow the model exactly.</summary>
    private static List<LayerTiming> Exact(double efficiency, double savedGbps, double overheadUs, double backwardRatio, double noise = 0, int seed = 7)
    {
        var random = new Random(seed);
        var timings = new List<LayerTiming>();
        foreach (int h in new[] { 256, 512, 768, 1024 })
            foreach (int tokens in new[] { 128, 512 })
            {
                double flops = 2.0 * tokens * 12.0 * h * h;
                double saved = 30.0 * h * tokens * 4;
                double forward = flops / (Rate.FlopsPerSecond * efficiency) + saved / (savedGbps * 1e9) + overheadUs / 1e6;
                double Noisy(double t) => t * (1 + noise * (2 * random.NextDouble() - 1));
                timings.Add(new LayerTiming(flops, saved, h, Backward: false, Noisy(forward)));
                timings.Add(new LayerTiming(flops, saved, h, Backward: true, Noisy(forward * backwardRatio)));
            }
        return timings;
    }

    [Fact]
    public void Given_exact_timings_When_fitted_Then_every_constant_is_recovered()
    {
        var fit = CpuLayerFit.Fit(Exact(efficiency: 0.7, savedGbps: 4, overheadUs: 300, backwardRatio: 1.5), Rate);

        Assert.Equal(0.7, fit.MatmulEfficiency, 1e-6);
        Assert.Equal(4, fit.SavedBytesRate.GBps, 1e-4);
        Assert.Equal(300e-6, fit.Overhead.Seconds, 1e-8);
        Assert.Equal(1.5, fit.BackwardRatio, 1e-6);
        Assert.True(fit.RmsRelativeError < 1e-6);
        Assert.Equal(["matmul", "saved_bytes", "overhead"], fit.Terms);
    }

    [Fact]
    public void Given_timings_that_would_need_a_negative_overhead_When_fitted_Then_that_term_is_left_out()
    {
        // Every pass 100 µs faster than a model without overhead: the best unconstrained overhead is negative.
        var timings = Exact(efficiency: 0.9, savedGbps: 5, overheadUs: 0, backwardRatio: 2)
            .Select(t => t with { Seconds = t.Seconds - 100e-6 * (t.Backward ? 2 : 1) }).ToList();
        var fit = CpuLayerFit.Fit(timings, Rate);

        Assert.Equal(0, fit.Overhead.Seconds);
        Assert.True(fit.SavedBytesRate.BytesPerSecond >= 0);
        Assert.True(fit.MatmulEfficiency > 0);
        Assert.DoesNotContain("overhead", fit.Terms);
    }

    [Fact]
    public void Given_noisy_timings_When_fitted_Then_predictions_stay_within_the_noise()
    {
        var timings = Exact(efficiency: 0.8, savedGbps: 6, overheadUs: 150, backwardRatio: 1.6, noise: 0.05);
        var fit = CpuLayerFit.Fit(timings, Rate);

        Assert.All(timings, t => Assert.InRange(fit.Predict(t), t.Seconds * 0.88, t.Seconds * 1.12));
        Assert.InRange(fit.BackwardRatio, 1.5, 1.7);
    }

    [Fact]
    public void Given_too_few_forward_timings_When_fitted_Then_it_refuses()
    {
        var two = Exact(0.8, 5, 100, 2).Where(t => !t.Backward).Take(2).ToList();

        Assert.Throws<ArgumentException>(() => CpuLayerFit.Fit(two, Rate));
    }

    [Fact]
    public void Given_a_profile_with_drives_When_the_compute_calibration_is_applied_Then_only_the_cpu_compute_figures_change()
    {
        var profile = ProfileCatalog.Default.Load("ci-2core-24gb-calibrated");
        var fit = CpuLayerFit.Fit(Exact(0.7, 4, 300, 1.5), Rate);
        var updated = CpuComputeProfile.Apply(profile, new CpuComputeCalibration(120, 400, 2, new CpuLayerCalibration(fit, 16), "gpt2"), "2026-11-28");

        Assert.Equal(profile.Drives, updated.Drives);
        Assert.Equal(profile.Cpu.AdamParamsPerS, updated.Cpu.AdamParamsPerS);
        Assert.Equal(profile.Cpu.MemoryBandwidthGbps, updated.Cpu.MemoryBandwidthGbps);
        Assert.Equal(120, updated.Cpu.MatmulGflops!.Value);
        Assert.Equal(FigureSource.Measured, updated.Cpu.LayerCompute!.SavedBytesGbps.Provenance!.Source);
        Assert.Equal("2026-11-28", updated.Cpu.LayerCompute.BackwardRatio.Provenance!.Date);
        Assert.Equal(1.5, updated.Cpu.LayerCompute.BackwardRatio.Value, 1e-3);
        // A new bf16 rate and no bf16 layers timed: the profile's bf16 fit, made against its old rate, goes.
        Assert.NotNull(profile.Cpu.LayerComputeBf16);
        Assert.Null(updated.Cpu.LayerComputeBf16);
    }

    [Fact]
    public void Given_layers_timed_in_bf16_When_applied_Then_the_bf16_fit_is_written_beside_the_fp32_one_with_its_own_provenance()
    {
        var profile = ProfileCatalog.Default.Load("ci-2core-24gb-calibrated");
        var fp32 = CpuLayerFit.Fit(Exact(0.7, 4, 300, 1.5), Rate);
        var bf16 = CpuLayerFit.Fit(Exact(0.5, 3, 900, 1.2), Rate);

        var updated = CpuComputeProfile.Apply(profile,
            new CpuComputeCalibration(120, 400, 2, new CpuLayerCalibration(fp32, 16), "gpt2") { Bf16Layers = new CpuLayerCalibration(bf16, 16, 7.5) }, "2026-12-08");

        var layers = updated.Cpu.LayerComputeBf16!;
        Assert.Equal(1.2, layers.BackwardRatio.Value, 1e-3);
        Assert.Equal(1.5, updated.Cpu.LayerCompute!.BackwardRatio.Value, 1e-3);
        Assert.Equal(7.5, layers.VocabGradientGbps!.Value);
        Assert.Contains("bf16", layers.MatmulEfficiency.Provenance!.Method);
        Assert.Contains("fp32", updated.Cpu.LayerCompute.MatmulEfficiency.Provenance!.Method);
        Assert.Same(layers, updated.Cpu.LayerComputeFor(AiOs.Planner.Settings.Precision.Bf16));
        Assert.Same(updated.Cpu.LayerCompute, updated.Cpu.LayerComputeFor(AiOs.Planner.Settings.Precision.Fp32));
    }

    [Fact]
    public void Given_a_profile_with_a_bf16_fit_When_a_new_bf16_rate_comes_without_a_fit_Then_the_old_fit_goes_and_without_a_rate_it_stays()
    {
        var base_ = ProfileCatalog.Default.Load("ci-2core-24gb-calibrated");
        var fit = CpuLayerFit.Fit(Exact(0.7, 4, 300, 1.5), Rate);
        var withBf16 = CpuComputeProfile.Apply(base_,
            new CpuComputeCalibration(120, 400, 2, new CpuLayerCalibration(fit, 16), "gpt2") { Bf16Layers = new CpuLayerCalibration(fit, 16) }, "2026-12-08");
        Assert.NotNull(withBf16.Cpu.LayerComputeBf16);

        // The bf16 fit was refused (or not timed) while the bf16 matmul rate was measured anew: the old fit, made against another rate, goes.
        var newRate = CpuComputeProfile.Apply(withBf16, new CpuComputeCalibration(120, 350, 2, new CpuLayerCalibration(fit, 16), "gpt2"), "2026-12-09");
        // No bf16 matmul on this CPU: the rate and the fit stay together.
        var noRate = CpuComputeProfile.Apply(withBf16, new CpuComputeCalibration(120, null, 2, new CpuLayerCalibration(fit, 16), "gpt2"), "2026-12-09");

        Assert.Null(newRate.Cpu.LayerComputeBf16);
        Assert.Equal(350, newRate.Cpu.MatmulGflopsBf16!.Value);
        Assert.Same(withBf16.Cpu.LayerComputeBf16, noRate.Cpu.LayerComputeBf16);
        Assert.Equal(withBf16.Cpu.MatmulGflopsBf16, noRate.Cpu.MatmulGflopsBf16);
    }
}

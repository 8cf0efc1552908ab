using AiOs.Planner.Calibration.Drive;
using AiOs.Planner.Hardware;

namespace AiOs.Planner.Calibration.Tests;

public class DriveCurveFitTests
{
    private static readonly int[] FlatBlocksKiB = [128, 1024, 8192];

    [Fact]
    public void Given_exact_samples_of_a_saturating_drive_When_fitted_Then_peak_and_half_point_are_recovered()
    {
        var fit = DriveCurveFit.Fit(Synthetic.Samples(peak: 3.2, h: 512, c: 0));

        Assert.Equal(3.2, fit.PeakGbps, 0.02);
        Assert.Equal(512, fit.HalfInflightKib, 512 * 0.03);
        Assert.True(fit.RSquared > 0.999);
    }

    [Fact]
    public void Given_a_drive_limited_by_request_rate_When_fitted_Then_the_block_term_is_kept_and_recovered()
    {
        var fit = DriveCurveFit.Fit(Synthetic.Samples(peak: 6.5, h: 1024, c: 128));

        Assert.NotNull(fit.HalfBlockKib);
        Assert.Equal(128, fit.HalfBlockKib!.Value, 128 * 0.05);
        Assert.Equal(6.5, fit.PeakGbps, 0.1);
    }

    [Fact]
    public void Given_noisy_samples_When_fitted_Then_the_prediction_stays_within_the_noise()
    {
        var samples = Synthetic.Samples(peak: 2.0, h: 256, c: 0, noise: 0.05);
        var fit = DriveCurveFit.Fit(samples);

        Assert.All(samples, s => Assert.InRange(fit.Predict(s), s.Gbps * 0.88, s.Gbps * 1.12));
        Assert.True(fit.RSquared > 0.8);
    }

    [Fact]
    public void Given_a_flat_drive_When_fitted_Then_the_peak_is_the_level_and_the_half_point_near_zero()
    {
        var samples = FlatBlocksKiB.Select(k => new DriveSample(k * 1024L, 1, 1, 1.5)).ToList();
        var fit = DriveCurveFit.Fit(samples);

        Assert.Equal(1.5, fit.PeakGbps, 0.01);
        Assert.True(fit.HalfInflightKib < 2);
    }

    [Fact]
    public void Given_the_fit_written_into_a_DriveDirection_When_asked_for_throughput_Then_it_matches_the_curve()
    {
        var samples = Synthetic.Samples(peak: 6.5, h: 1024, c: 128);
        var fit = DriveCurveFit.Fit(samples);
        var direction = new DriveDirection { PeakGbps = fit.PeakGbps, HalfInflightKib = fit.HalfInflightKib, HalfBlockKib = fit.HalfBlockKib is { } c ? new Figure(c) : null };

        Assert.All(samples, s => Assert.Equal(fit.Predict(s), direction.Throughput(s.Settings).GBps, 1e-9));
    }

    [Fact]
    public void Given_one_sample_When_fitted_Then_it_is_refused()
    {
        Assert.Throws<ArgumentException>(() => DriveCurveFit.Fit([new DriveSample(1 << 20, 1, 1, 1.0)]));
    }
}

using AiOs.Planner.Calibration.Compute;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Tests;

public sealed class CpuFitQualityTests
{
    private static CpuLayerFitResult FitWith(double rSquared) =>
        new(0.9, Bandwidth.FromGBps(2), SimDuration.FromMicroseconds(200), 1.4, new FlopRate(1e11), rSquared, 0.17, ["matmul"]);

    [Theory]
    [InlineData(0.984, CpuFitVerdict.Good, true)]
    [InlineData(0.9, CpuFitVerdict.Good, true)]
    [InlineData(0.75, CpuFitVerdict.Poor, true)]
    [InlineData(0.39, CpuFitVerdict.Unusable, false)]
    [InlineData(double.NaN, CpuFitVerdict.Unusable, false)]
    public void Given_a_fit_When_assessed_without_force_Then_only_an_unusable_one_is_not_written(double r2, CpuFitVerdict verdict, bool write)
    {
        var a = CpuFitQuality.Assess(FitWith(r2), force: false);
        Assert.Equal((verdict, write), (a.Verdict, a.Write));
        Assert.Equal(verdict == CpuFitVerdict.Good, a.Message is null);
    }

    [Fact]
    public void Given_an_unusable_fit_When_assessed_Then_the_message_names_r2_and_the_fix()
    {
        var a = CpuFitQuality.Assess(FitWith(0.39), force: false);
        Assert.Contains("R² 0.390", a.Message);
        Assert.Contains("NOT written", a.Message);
        Assert.Contains("--force", a.Message);
    }

    [Fact]
    public void Given_an_unusable_fit_and_force_When_assessed_Then_it_is_written_with_a_warning()
    {
        var a = CpuFitQuality.Assess(FitWith(0.39), force: true);
        Assert.True(a.Write);
        Assert.Contains("Written anyway because of --force", a.Message);
    }
}

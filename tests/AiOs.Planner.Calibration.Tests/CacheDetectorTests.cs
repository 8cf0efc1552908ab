using AiOs.Planner.Calibration.Drive;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Tests;

public class CacheDetectorTests
{
    private static List<ProbeResult> Segments(params double[] gbps) =>
        gbps.Select(g => new ProbeResult(new AioSettings(), IoDirection.Write, Bytes.FromMiB(256), TimeSpan.FromSeconds(0.256 * 1.048576 / g))).ToList();

    [Fact]
    public void Given_writes_that_fall_off_as_the_file_grows_When_detected_Then_the_note_names_the_cache_and_the_sustained_rate()
    {
        var finding = CacheDetector.Detect(Segments(4, 4, 4, 4, 4, 1, 1, 1), Bandwidth.FromGBps(1.2), Bandwidth.FromGBps(1.1), Bytes.FromGiB(2));

        Assert.NotNull(finding.SustainedWrite);
        Assert.Equal(1.0, finding.SustainedWrite!.Value.GBps, 0.01);
        Assert.Contains("after about 1.25 GiB", finding.Note, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_writes_much_faster_than_reads_When_detected_Then_a_write_back_cache_is_reported()
    {
        var finding = CacheDetector.Detect(Segments(3, 3, 3, 3), Bandwidth.FromGBps(1.0), Bandwidth.FromGBps(3.0), Bytes.FromGiB(1));

        Assert.Null(finding.SustainedWrite);
        Assert.Contains("faster than reads", finding.Note, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_a_steady_drive_with_balanced_rates_When_detected_Then_there_is_no_note()
    {
        var finding = CacheDetector.Detect(Segments(2, 2.1, 1.9, 2, 2, 2.05, 1.95, 2), Bandwidth.FromGBps(2.2), Bandwidth.FromGBps(2.0), Bytes.FromGiB(2));

        Assert.Null(finding.Note);
        Assert.Null(finding.SustainedWrite);
    }
}

using AiOs.Planner.Calibration.Drive;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Tests;

public class DriveSweepTests
{
    private static readonly SweepPlan Plan = new() { SampleDuration = TimeSpan.Zero, SampleMinBytes = Bytes.Zero };

    [Fact]
    public async Task Given_a_drive_that_saturates_early_When_swept_Then_each_walk_stops_after_two_steps_without_gain()
    {
        var tried = new List<Settings.AioSettings>();
        var samples = await DriveSweep.RunAsync((s, _) =>
        {
            tried.Add(s);
            return Task.FromResult(Bandwidth.FromGBps(Synthetic.Rate(2.0, 64, 0, s)));
        }, Plan, null, CancellationToken.None);

        Assert.True(samples.Count < Plan.MaxSamples, $"took {samples.Count} of at most {Plan.MaxSamples}");
        Assert.Equal(tried.Count, samples.Count);
        Assert.DoesNotContain(samples, s => s.QueueDepth == 64 && s.BlockSize > 128 * 1024);
    }

    [Fact]
    public async Task Given_a_drive_that_keeps_improving_with_depth_When_swept_Then_the_queue_walk_reaches_deep_queues()
    {
        var samples = await DriveSweep.RunAsync((s, _) => Task.FromResult(Bandwidth.FromGBps(Synthetic.Rate(7.0, 64 * 1024, 0, s))),
            Plan, null, CancellationToken.None);

        Assert.Contains(samples, s => s.QueueDepth >= 32);
        Assert.All(samples, s => Assert.True(s.Settings.InFlight <= Plan.MaxInFlight));
    }

    [Fact]
    public async Task Given_every_sample_When_swept_Then_settings_are_never_measured_twice()
    {
        var samples = await DriveSweep.RunAsync((s, _) => Task.FromResult(Bandwidth.FromGBps(Synthetic.Rate(3.0, 2048, 64, s))),
            Plan, null, CancellationToken.None);

        Assert.Equal(samples.Count, samples.Select(s => (s.BlockSize, s.QueueDepth, s.Threads)).Distinct().Count());
    }

    [Fact]
    public async Task Given_a_cancelled_token_When_swept_Then_it_stops_with_OperationCanceledException()
    {
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            DriveSweep.RunAsync((s, _) => Task.FromResult(Bandwidth.FromGBps(1)), Plan, null, cts.Token));
    }
}

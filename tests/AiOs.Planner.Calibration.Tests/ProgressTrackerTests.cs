using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Tests;

public class ProgressTrackerTests
{
    private sealed class Recorder : IProgress<CalibrationProgress>
    {
        public List<CalibrationProgress> Seen { get; } = [];
        public void Report(CalibrationProgress value) => Seen.Add(value);
    }

    [Fact]
    public void Given_a_whole_calibration_When_tracked_Then_done_never_falls_never_passes_the_total_and_ends_at_it()
    {
        var mode = ModeSettings.For(CalibrationMode.Quick);
        var sink = new Recorder();
        var t = new ProgressTracker(mode, sink);

        t.SetLayout(Bytes.FromGiB(1));
        t.LayoutDone(Bytes.FromMiB(512));
        t.LayoutDone(Bytes.FromGiB(1));
        t.LayoutFinished();
        foreach (string phase in new[] { "drive reads", "drive writes" })
        {
            t.StartSweep(phase);
            for (int i = 0; i < 5; i++) t.SampleDone(phase); // stops early: fewer than MaxSamples
            t.SweepFinished();
        }
        t.SwapDone(0.25);
        t.SwapDone(1);
        foreach (string phase in new[] { "memory copy", "memory copy", "CPU Adam", "CPU Adam", "done" }) t.HostStep(phase);
        t.Finish();

        Assert.All(sink.Seen, p => Assert.True(p.Done <= p.Total + 1e-9, $"{p.Phase}: {p.Done} > {p.Total}"));
        Assert.All(sink.Seen.Zip(sink.Seen.Skip(1)), pair => Assert.True(pair.Second.Done >= pair.First.Done - 1e-9));
        Assert.Equal(sink.Seen[^1].Total, sink.Seen[^1].Done, 1e-9);
        Assert.True(sink.Seen[^1].Total < sink.Seen[0].Total, "an early stop shortens the estimate");
    }
}

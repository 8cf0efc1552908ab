using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Tests;

public sealed class TraceStatsTests
{
    private static TraceSpan S(string resource, long start, long end) => new(1, 0, resource, "op", 0, new SimDuration(start), new SimDuration(end));

    [Fact]
    public void Given_OverlappingAndSeparateSpans_When_BusyTimeIsComputed_Then_OverlapsCountOnce()
    {
        TraceSpan[] spans = [S("nvme", 0, 10), S("nvme", 5, 15), S("nvme", 20, 30), S("cpu_compute", 0, 100)];

        Assert.Equal(new SimDuration(25), TraceStats.Busy(spans, "nvme"));
        Assert.Equal(new SimDuration(10), TraceStats.Busy(spans, "nvme", s => s.Start.Nanoseconds >= 20));
    }

    [Fact]
    public void Given_AManualClock_When_ASpanIsTimed_Then_ItsStartAndEndComeFromTheClock()
    {
        var clock = new ManualClock();
        var trace = new SpanTrace(clock) { CurrentStep = 4 };

        clock.Advance(1_000);
        using (trace.Begin(ResourceKind.Compute, OpKind.Recompute, 2)) clock.Advance(3_000);

        TraceSpan span = Assert.Single(trace.Drain());
        Assert.Equal("cpu_compute", span.Resource);
        Assert.Equal("recompute", span.Operation);
        Assert.Equal(4, span.Step);
        Assert.Equal(new SimDuration(1_000), span.Start);
        Assert.Equal(new SimDuration(3_000), span.Duration);
        Assert.Empty(trace.Drain());
    }

    /// <summary>A clock whose timestamps are nanoseconds set by the test.</summary>
    private sealed class ManualClock : TimeProvider
    {
        private long _now;
        public override long TimestampFrequency => 1_000_000_000;
        public override long GetTimestamp() => _now;
        public void Advance(long ns) => _now += ns;
    }
}

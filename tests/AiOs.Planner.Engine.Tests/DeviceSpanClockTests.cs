using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Engine.Tests;

/// <summary>Device-timed spans: compute spans take the device clock's times at settling; other resources keep the host's.</summary>
public sealed class DeviceSpanClockTests
{
    /// <summary>A device whose marks are reached at fixed times: mark i at <c>ReachedAt[i]</c> ns; the wait ends at <c>SettledAt</c> ns.</summary>
    private sealed class ScriptedClock(long[] reachedAt, long settledAt) : IDeviceSpanClock
    {
        public int Marks { get; private set; }
        public int Settles { get; private set; }

        public int Mark() => Marks++;

        public long[] Settle()
        {
            Settles++;
            var before = new long[Marks];
            for (int i = 0; i < Marks; i++) before[i] = settledAt - reachedAt[i];
            Marks = 0;
            return before;
        }

        public void Dispose() { }
    }

    private static Operation Op(int id, OpKind kind, ResourceKind resource) => new()
    {
        Id = id, Kind = kind, Resource = resource, Phase = StepPhase.Forward, Unit = UnitId.Layer(id), Deps = [],
    };

    [Fact]
    public void Given_a_device_clock_When_compute_spans_end_Then_they_enter_the_trace_only_at_settling_with_the_device_times()
    {
        var time = new ManualClock();
        var trace = new SpanTrace(time, hasGpu: true);
        // Two compute operations: marks 0–1 and 2–3, reached 100, 400, 400 and 1,000 µs after the origin; the wait ends at 1,500 µs.
        var clock = new ScriptedClock([100_000, 400_000, 400_000, 1_000_000], 1_500_000);
        trace.DeviceClock = clock;

        using (trace.Begin(Op(0, OpKind.Forward, ResourceKind.Compute))) time.Advance(5_000);
        using (trace.Begin(Op(1, OpKind.Forward, ResourceKind.Compute))) time.Advance(5_000);
        Assert.Empty(trace.Spans());

        time.Advance(1_490_000);
        trace.SettleDeviceSpans();

        var spans = trace.Spans();
        Assert.Equal(1, clock.Settles);
        Assert.Equal(0, clock.Marks);
        Assert.Equal([0, 1], spans.Select(s => s.OpId));
        Assert.Equal(100_000, spans[0].Start.Nanoseconds);
        Assert.Equal(400_000, spans[0].End.Nanoseconds);
        Assert.Equal(400_000, spans[1].Start.Nanoseconds);
        Assert.Equal(1_000_000, spans[1].End.Nanoseconds);
        Assert.All(spans, s => Assert.Equal("gpu", s.Resource));
    }

    [Fact]
    public void Given_a_device_clock_When_a_copy_span_ends_Then_it_is_host_timed_at_once_and_takes_no_mark()
    {
        var time = new ManualClock();
        var trace = new SpanTrace(time, hasGpu: true);
        var clock = new ScriptedClock([], 0);
        trace.DeviceClock = clock;

        using (trace.Begin(Op(7, OpKind.ParamUpload, ResourceKind.H2d))) time.Advance(30_000);

        var span = Assert.Single(trace.Spans());
        Assert.Equal(30_000, span.Duration.Nanoseconds);
        Assert.Equal(0, clock.Marks);
    }

    [Fact]
    public void Given_no_device_clock_When_settling_Then_nothing_changes_and_compute_spans_are_host_timed()
    {
        var time = new ManualClock();
        var trace = new SpanTrace(time);

        using (trace.Begin(Op(0, OpKind.Backward, ResourceKind.Compute))) time.Advance(12_000);
        trace.SettleDeviceSpans();

        Assert.Equal(12_000, Assert.Single(trace.Spans()).Duration.Nanoseconds);
    }

    [Fact]
    public void Given_a_device_clock_When_passes_and_an_update_end_Then_the_host_pass_time_counts_only_the_passes_host_time_and_restarts()
    {
        var time = new ManualClock();
        var trace = new SpanTrace(time, hasGpu: true) { CountsHostPasses = true };
        trace.DeviceClock = new ScriptedClock([0, 0, 0, 0, 0, 0, 0, 0], 0);

        using (trace.Begin(Op(0, OpKind.Forward, ResourceKind.Compute))) time.Advance(5_000);
        using (trace.Begin(Op(1, OpKind.Recompute, ResourceKind.Compute))) time.Advance(7_000);
        using (trace.Begin(Op(2, OpKind.Backward, ResourceKind.Compute))) time.Advance(11_000);
        // The update's host time includes its wait for the norms: not a pass's.
        using (trace.Begin(Op(3, OpKind.OptimizerStep, ResourceKind.Compute))) time.Advance(900_000);
        // Host-timed copies are not the device's passes either.
        using (trace.Begin(Op(4, OpKind.ParamUpload, ResourceKind.H2d))) time.Advance(50_000);

        Assert.Equal(23_000, trace.TakeHostPassTime()!.Value.Nanoseconds);
        Assert.Equal(0, trace.TakeHostPassTime()!.Value.Nanoseconds);
    }

    [Fact]
    public void Given_a_host_wait_inside_a_pass_When_the_host_pass_time_is_taken_Then_the_wait_is_left_out()
    {
        var time = new ManualClock();
        var trace = new SpanTrace(time, hasGpu: true) { CountsHostPasses = true };
        trace.DeviceClock = new ScriptedClock([0, 0], 0);

        using (trace.Begin(Op(0, OpKind.Forward, ResourceKind.Compute)))
        {
            time.Advance(4_000);
            using (trace.HostWait()) time.Advance(70_000);
            time.Advance(1_000);
        }

        Assert.Equal(5_000, trace.TakeHostPassTime()!.Value.Nanoseconds);
    }

    [Fact]
    public void Given_a_trace_that_does_not_count_host_passes_When_taken_Then_there_is_no_figure()
    {
        // The layer-by-layer trainer's passes wait for the device inside their spans: its host time is not the launch figure.
        var time = new ManualClock();
        var trace = new SpanTrace(time, hasGpu: true);
        trace.DeviceClock = new ScriptedClock([0, 0], 0);
        using (trace.Begin(Op(0, OpKind.Forward, ResourceKind.Compute))) time.Advance(5_000);
        Assert.Null(trace.TakeHostPassTime());
    }

    [Fact]
    public void Given_no_device_clock_When_taking_the_host_pass_time_Then_there_is_none()
    {
        var time = new ManualClock();
        var trace = new SpanTrace(time);
        using (trace.Begin(Op(0, OpKind.Forward, ResourceKind.Compute))) time.Advance(5_000);
        Assert.Null(trace.TakeHostPassTime());
    }

    /// <summary>A clock whose timestamps are nanoseconds set by the test.</summary>
    private sealed class ManualClock : TimeProvider
    {
        private long _now;
        public override long TimestampFrequency => 1_000_000_000;
        public override long GetTimestamp() => _now;
        public void Advance(long ns) => _now += ns;
    }
    /// <summary>Marks nothing on a device: every mark is reached at the moment of settling (times are not what this checks).</summary>
    private sealed class CountingClock : IDeviceSpanClock
    {
        private int _marks;
        public int Settles { get; private set; }
        public int Mark() => _marks++;

        public long[] Settle()
        {
            Settles++;
            var before = new long[_marks];
            _marks = 0;
            return before;
        }

        public void Dispose() { }
    }

    [Fact]
    public void Given_a_device_clock_on_the_layerwise_trainer_When_steps_run_Then_each_step_settles_once_and_every_compute_operation_has_its_span()
    {
        // The layer-by-layer trainer times compute spans on the device as the resident one does: without the settle at the
        // step's end they would never enter the trace.
        var spec = Models.ModelCatalog.Default.Load("tiny-gpt");
        var settings = LayerwiseTrainerTests.Small() with { ParamOffload = Settings.OffloadTier.Cpu, OptimizerOffload = Settings.OffloadTier.Cpu };
        using var trainer = new LayerwiseTrainer(spec, settings, LayerwiseTrainerTests.Options());
        var clock = new CountingClock();
        trainer.Trace.DeviceClock = clock;
        var data = Data.TokenDataset.Load(Data.BundledText.DefaultPath);

        for (int step = 0; step < 2; step++)
            trainer.Step(m => data.Sample(42, step, m, settings.MicroBatch, settings.SeqLen));

        int computeOps = trainer.Program.Ops.Count(o => o.Resource == ResourceKind.Compute);
        Assert.Equal(2, clock.Settles);
        // Its passes wait for the device inside their spans (the loss read at the head): no launch figure.
        Assert.Null(trainer.Trace.TakeHostPassTime());
        foreach (int step in new[] { 1, 2 })
            Assert.Equal(computeOps, trainer.Trace.SpansOf(step).Count(s => s.OpId >= 0 && trainer.Program.Ops[s.OpId].Resource == ResourceKind.Compute));
    }
}

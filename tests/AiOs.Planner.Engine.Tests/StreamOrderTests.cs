using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// The engine's program executed with queued device work (as on a GPU with copy streams), against a simulated
/// device whose streams run ahead as far as their waits allow: every dependency's device work must end before
/// the work that depends on it starts, and a host operation must wait for the device work it depends on.
/// </summary>
public sealed class StreamOrderTests
{
    private static readonly ModelSpec Spec = ModelCatalog.Default.Load("tiny-gpt") with { NumLayers = 3 };

    public static TheoryData<OffloadTier, OffloadTier, int, StepSchedule> Placements() => new()
    {
        { OffloadTier.Cpu, OffloadTier.Cpu, 1, StepSchedule.DeepSpeed },
        { OffloadTier.Cpu, OffloadTier.Cpu, 2, StepSchedule.Overlapped },
        { OffloadTier.Nvme, OffloadTier.Nvme, 2, StepSchedule.DeepSpeed },
        { OffloadTier.Nvme, OffloadTier.Cpu, 1, StepSchedule.Overlapped },
    };

    private static StepProgram ProgramFor(OffloadTier param, OffloadTier optimizer, int accumulation, StepSchedule schedule) =>
        EngineProgram.For(Spec, LayerwiseTrainerTests.Small() with
        {
            ParamOffload = param, OptimizerOffload = optimizer, NvmePath = param == OffloadTier.Nvme || optimizer == OffloadTier.Nvme ? "/tmp/nvme" : null,
            GradAccumulation = accumulation, Schedule = schedule, BufferCount = 2, PrefetchDepth = 2,
        });

    [Theory]
    [MemberData(nameof(Placements))]
    public void Given_queued_device_work_When_stream_order_wraps_the_handlers_Then_every_dependency_ends_on_the_device_before_its_dependent_starts(
        OffloadTier param, OffloadTier optimizer, int accumulation, StepSchedule schedule)
    {
        StepProgram program = ProgramFor(param, optimizer, accumulation, schedule);
        Assert.Contains(program.Ops, o => o.Kind == OpKind.ParamUpload);
        var device = new SimulatedDevice(program);
        var order = new StreamOrder(program, device);

        Execute(program, order.Wrap(device.Handlers()));

        device.RunStreams();
        Assert.Empty(device.Violations());
    }

    [Theory]
    [MemberData(nameof(Placements))]
    public void Given_queued_device_work_without_stream_order_When_the_streams_run_ahead_Then_the_simulated_device_sees_the_violation(
        OffloadTier param, OffloadTier optimizer, int accumulation, StepSchedule schedule)
    {
        // The check above can fail: the same program with the handlers unwrapped (copies on their own streams, no events) breaks order.
        StepProgram program = ProgramFor(param, optimizer, accumulation, schedule);
        var device = new SimulatedDevice(program);

        Execute(program, device.Handlers());

        device.RunStreams();
        Assert.NotEmpty(device.Violations());
    }

    private static void Execute(StepProgram program, IReadOnlyDictionary<OpKind, Action<Operation>> handlers)
    {
        using var executor = new ProgramExecutor(new SpanTrace(TimeProvider.System));
        executor.Run(program.Ops, handlers);
    }

    /// <summary>
    /// Streams as queues of work and waits; an event is the position in its stream it was recorded at. <see cref="RunStreams"/>
    /// runs the compute stream as far as it can before the copy streams (the order that exposes a missing wait), then the others.
    /// </summary>
    private sealed class SimulatedDevice(StepProgram program) : IStreamEvents
    {
        private const int Up = 1, Down = 2;
        private readonly object _gate = new();
        private readonly List<object>[] _streams = [[], [], []];
        private readonly Dictionary<nint, (int Stream, int Position)> _recorded = [];
        private readonly HashSet<nint> _synchronized = [];
        private readonly Dictionary<int, int> _finish = [];
        private readonly Dictionary<int, int> _start = [];
        private readonly List<string> _hostViolations = [];
        private readonly Dictionary<int, nint> _eventOfOp = [];
        private nint _next = 1;
        private int _clock;

        private sealed record Work(int Op);
        private sealed record WaitFor(int Stream, int Position);

        public nint StreamOf(ResourceKind resource) => resource switch { ResourceKind.H2d => Up, ResourceKind.D2h => Down, _ => 0 };

        public nint NewEvent()
        {
            lock (_gate) return _next++;
        }

        public void Record(nint e, nint stream)
        {
            lock (_gate) _recorded[e] = ((int)stream, _streams[stream].Count);
        }

        public void Wait(nint stream, nint e)
        {
            lock (_gate)
                if (_recorded.TryGetValue(e, out var at)) _streams[stream].Add(new WaitFor(at.Stream, at.Position));
        }

        public void Synchronize(nint e)
        {
            lock (_gate) _synchronized.Add(e);
        }

        public Dictionary<OpKind, Action<Operation>> Handlers() =>
            Enum.GetValues<OpKind>().ToDictionary(k => k, _ => (Action<Operation>)Handle);

        private void Handle(Operation op)
        {
            lock (_gate)
            {
                if (StreamOrder.OnDevice(op.Resource))
                {
                    _streams[StreamOf(op.Resource)].Add(new Work(op.Id));
                    return;
                }
                // A host operation reads or overwrites what its device dependencies touch: it must have waited for them.
                foreach (int dep in op.Deps)
                    if (StreamOrder.OnDevice(program.Ops[dep].Resource) && !SynchronizedOn(dep))
                        _hostViolations.Add($"{op} ran on the host without waiting for {program.Ops[dep]}");
            }
        }

        /// <summary>Whether the host waited on an event recorded after <paramref name="dep"/>'s work (the fake's events are numbered in creation order, one per device op).</summary>
        private bool SynchronizedOn(int dep)
        {
            if (_eventOfOp.Count == 0)
            {
                nint e = 1;
                foreach (Operation o in program.Ops)
                    if (StreamOrder.OnDevice(o.Resource)) _eventOfOp[o.Id] = e++;
            }
            return _synchronized.Contains(_eventOfOp[dep]);
        }

        public void RunStreams()
        {
            var done = new int[3];
            bool progress = true;
            while (progress)
            {
                progress = false;
                for (int s = 0; s < 3; s++)
                    while (done[s] < _streams[s].Count)
                    {
                        object item = _streams[s][done[s]];
                        if (item is WaitFor w && done[w.Stream] < w.Position) break;
                        if (item is Work work)
                        {
                            _start[work.Op] = _clock++;
                            _finish[work.Op] = _clock++;
                        }
                        done[s]++;
                        progress = true;
                    }
            }
            for (int s = 0; s < 3; s++) Assert.True(done[s] == _streams[s].Count, $"stream {s} deadlocked at item {done[s]} of {_streams[s].Count}");
        }

        public List<string> Violations()
        {
            var found = new List<string>(_hostViolations);
            foreach (Operation op in program.Ops)
            {
                if (!_start.TryGetValue(op.Id, out int start)) continue;
                foreach (int dep in op.Deps)
                    if (_finish.TryGetValue(dep, out int end) && end > start) found.Add($"{op} started before {program.Ops[dep]} ended");
            }
            return found;
        }
    }
}

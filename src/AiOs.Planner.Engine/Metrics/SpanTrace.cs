using System.Collections.Concurrent;
using System.Text.Json;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Metrics;

/// <summary>
/// One timed piece of work, named as the simulator's timeline names it: the resource
/// (<see cref="ResourceNames"/>: <c>cpu_compute</c> or <c>gpu</c>, <c>memcpy_in</c>/<c>pcie_h2d</c>,
/// <c>memcpy_out</c>/<c>pcie_d2h</c>, <c>nvme</c>, <c>cpu_optimizer</c>, <c>host_sums</c>, <c>network</c>; plus <c>stall</c> for waits), the
/// operation (an <see cref="OpKind"/> in snake_case, or <c>wait_…</c> for a stall), the layer as the step
/// program numbers it (−1 the embedding side, L the head; optimizer work on the outer block is −1), the
/// micro-batch, when, relative to the start of the run, the bytes it moved (0 for compute and waits), and the id of
/// the step-program operation it executed (−1 for work outside the program: waits, set-up).
/// </summary>
public sealed record TraceSpan(int Step, int MicroBatch, string Resource, string Operation, int Layer, SimDuration Start, SimDuration End, long Bytes = 0, int OpId = -1)
{
    /// <summary>End − start.</summary>
    public SimDuration Duration => End - Start;
}

/// <summary>
/// Collects <see cref="TraceSpan"/>s from any thread against one clock. The clock is a
/// <see cref="TimeProvider"/> so tests can drive it.
/// </summary>
public sealed class SpanTrace
{
    private readonly TimeProvider _clock;
    private readonly long _origin;
    private readonly ConcurrentQueue<TraceSpan> _spans = new();
    /// <summary>Compute spans timed by <see cref="DeviceClock"/>, waiting for <see cref="SettleDeviceSpans"/>: the span (times unset) and its two marks.</summary>
    private readonly List<(TraceSpan Span, int Start, int End)> _onDevice = [];

    /// <summary>Starts the trace's time origin now; <paramref name="hasGpu"/> picks the resource names.</summary>
    public SpanTrace(TimeProvider clock, bool hasGpu = false)
    {
        _clock = clock;
        _origin = clock.GetTimestamp();
        HasGpu = hasGpu;
    }

    /// <summary>Whether compute runs on a GPU (names resources <c>gpu</c>, <c>pcie_h2d</c> … instead of <c>cpu_compute</c>, <c>memcpy_in</c> …).</summary>
    public bool HasGpu { get; }

    /// <summary>The step spans are attributed to (set by the compute thread between steps).</summary>
    public int CurrentStep { get; set; }

    /// <summary>The micro-batch spans are attributed to (set by the compute thread).</summary>
    public int CurrentMicroBatch { get; set; }

    /// <summary>Starts a span of <paramref name="op"/> on <paramref name="resource"/>, named as the simulator names them.</summary>
    public SpanScope Begin(ResourceKind resource, OpKind op, int layer, long bytes = 0) => Begin(ResourceNames.Of(resource, HasGpu), Name(op), layer, bytes);

    /// <summary>
    /// When set, spans of compute operations are timed on the device by this clock instead of by the host (the host does not
    /// wait for the device to end them); they enter the trace at <see cref="SettleDeviceSpans"/>.
    /// </summary>
    public IDeviceSpanClock? DeviceClock { get; set; }

    /// <summary>Host nanoseconds inside device-timed pass spans since the last <see cref="TakeHostPassTime"/> (<see cref="SpanScope.Dispose"/> adds them).</summary>
    private long _hostPassNs;

    /// <summary>
    /// The host's time inside the device-timed spans of the passes (forward, recompute, backward) since the last call, then
    /// starts the next interval; null without a <see cref="DeviceClock"/> (on a CPU the spans are host time already). Those
    /// spans are timed on the device, so the host does not wait at them: this is what queueing the passes' work cost the host.
    /// Well below the passes on the device's clock, the device was the limit; near them, the host was, or only kept pace.
    /// </summary>
    public SimDuration? TakeHostPassTime() => DeviceClock is null || !CountsHostPasses ? null : new SimDuration(Interlocked.Exchange(ref _hostPassNs, 0));

    /// <summary>
    /// Whether the trainer's passes leave host waits out of their spans (<see cref="HostWait"/> marks any that remain), so their
    /// host time is the launch figure <see cref="TakeHostPassTime"/> gives; unset, it gives none.
    /// </summary>
    public bool CountsHostPasses { get; set; }

    /// <summary>Marks a host wait for the device inside a pass's span: its time is taken out of <see cref="TakeHostPassTime"/>'s figure.</summary>
    public HostWaitScope HostWait() => new(this, Now);

    /// <summary>An open host wait; disposing takes its time out of the host pass time.</summary>
    public readonly struct HostWaitScope(SpanTrace trace, SimDuration start) : IDisposable
    {
        public void Dispose() => Interlocked.Add(ref trace._hostPassNs, -(trace.Now - start).Nanoseconds);
    }

    /// <summary>Whether <paramref name="operation"/> (a span's name) is a pass's: forward, recompute or backward.</summary>
    private static bool IsPass(string operation) => operation is "forward" or "recompute" or "backward";

    /// <summary>Starts the span of program operation <paramref name="op"/>: its resource, kind, unit number, micro-batch, bytes and id.</summary>
    public SpanScope Begin(Operation op) =>
        new(this, ResourceNames.Of(op.Resource, HasGpu), Name(op.Kind), op.TraceLayer, Now, op.Bytes.Value, op.Id, op.MicroBatch,
            op.Resource == ResourceKind.Compute && DeviceClock is { } clock ? clock.Mark() : -1);

    /// <summary>
    /// Waits for the device to pass the device-timed spans begun so far and adds them to the trace, placed on the host's clock:
    /// the moment the wait ended is the device's time of its last mark. Call at a step's end (it is the step's synchronisation).
    /// </summary>
    public void SettleDeviceSpans()
    {
        if (DeviceClock is not { } clock) return;
        (TraceSpan Span, int Start, int End)[] pending;
        lock (_onDevice)
        {
            pending = [.. _onDevice];
            _onDevice.Clear();
        }
        long[] before = clock.Settle();
        SimDuration now = Now;
        foreach (var (span, start, end) in pending)
            Add(span with { Start = now - new SimDuration(before[start]), End = now - new SimDuration(before[end]) });
    }

    private void AddOnDevice(TraceSpan span, int start, int end)
    {
        lock (_onDevice) _onDevice.Add((span, start, end));
    }

    /// <summary>Starts a span of time spent waiting for <paramref name="awaited"/> (resource <c>stall</c>).</summary>
    public SpanScope Stall(OpKind awaited, int layer) => Begin(StallResource, "wait_" + Name(awaited), layer);

    /// <summary>The resource name of waits.</summary>
    public const string StallResource = "stall";

    /// <summary>
    /// Starts a span of the host-sums thread's wait for a later micro-batch's gradient copy to land before its add (resource
    /// <c>stall</c>, operation <see cref="CopyWaitName"/>): the part of a <c>grad_accumulate</c> span that is the copy's, not the
    /// add's. Not a compute-thread stall, so no part of a step's I/O stall.
    /// </summary>
    public SpanScope CopyWait(int layer) => Begin(StallResource, CopyWaitName, layer);

    /// <summary>The operation name of <see cref="CopyWait"/> spans.</summary>
    public const string CopyWaitName = "wait_gradient_copy";

    /// <summary>An operation's name in traces: its <see cref="OpKind"/> in snake_case.</summary>
    public static string Name(OpKind op) => JsonNamingPolicy.SnakeCaseLower.ConvertName(op.ToString());

    /// <summary>Time since the origin.</summary>
    public SimDuration Now => FromTicks(_clock.GetTimestamp() - _origin);

    /// <summary>Starts a span that is recorded when the returned scope is disposed.</summary>
    public SpanScope Begin(string resource, string operation, int layer, long bytes = 0) => new(this, resource, operation, layer, Now, bytes, -1, CurrentMicroBatch);

    /// <summary>Records a finished span.</summary>
    public void Add(TraceSpan span) => _spans.Enqueue(span);

    /// <summary>Every span so far, ordered by start.</summary>
    public IReadOnlyList<TraceSpan> Spans() => _spans.OrderBy(s => s.Start).ThenBy(s => s.Resource, StringComparer.Ordinal).ToArray();

    /// <summary>Removes and returns every span recorded so far, ordered by start (keeps long runs from growing the trace without bound).</summary>
    public IReadOnlyList<TraceSpan> Drain()
    {
        var taken = new List<TraceSpan>();
        while (_spans.TryDequeue(out TraceSpan? s)) taken.Add(s);
        return taken.OrderBy(s => s.Start).ToArray();
    }

    /// <summary>Spans of one step.</summary>
    public IReadOnlyList<TraceSpan> SpansOf(int step) => _spans.Where(s => s.Step == step).OrderBy(s => s.Start).ToArray();

    private SimDuration FromTicks(long ticks) => new((long)(ticks * (1e9 / _clock.TimestampFrequency)));

    /// <summary>An open span; disposing records it.</summary>
    public readonly struct SpanScope : IDisposable
    {
        private readonly SpanTrace _trace;
        private readonly string _resource, _operation;
        private readonly int _layer, _step, _micro, _opId, _deviceMark;
        private readonly long _bytes;
        private readonly SimDuration _start;

        internal SpanScope(SpanTrace trace, string resource, string operation, int layer, SimDuration start, long bytes, int opId, int microBatch, int deviceMark = -1)
        {
            _deviceMark = deviceMark;
            _opId = opId;
            _bytes = bytes;
            _trace = trace;
            _resource = resource;
            _operation = operation;
            _layer = layer;
            _start = start;
            _step = trace.CurrentStep;
            _micro = microBatch;
        }

        /// <summary>Records the span ending now (a device-timed span: ending at the device stream's current position).</summary>
        public void Dispose()
        {
            if (_trace is null) return;
            if (_deviceMark >= 0 && _trace.DeviceClock is { } clock)
            {
                _trace.AddOnDevice(new TraceSpan(_step, _micro, _resource, _operation, _layer, _start, _start, _bytes, _opId), _deviceMark, clock.Mark());
                if (IsPass(_operation)) Interlocked.Add(ref _trace._hostPassNs, (_trace.Now - _start).Nanoseconds);
            }
            else
                _trace.Add(new TraceSpan(_step, _micro, _resource, _operation, _layer, _start, _trace.Now, _bytes, _opId));
        }
    }
}

using System.Collections.Concurrent;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Metrics;

/// <summary>
/// One timed piece of work: which resource did it (<c>compute</c>, <c>nvme-read</c>, <c>nvme-write</c>,
/// <c>copy</c>, <c>cpu-adam</c>, <c>stall</c>), what it was, for which unit (layer index; the outer block is
/// the layer count; −1 for none), and when, relative to the start of the run.
/// </summary>
public sealed record TraceSpan(int Step, string Resource, string Operation, int Layer, SimDuration Start, SimDuration End)
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

    /// <summary>Starts the trace's time origin now.</summary>
    public SpanTrace(TimeProvider clock)
    {
        _clock = clock;
        _origin = clock.GetTimestamp();
    }

    /// <summary>The step spans are attributed to (set by the compute thread between steps).</summary>
    public int CurrentStep { get; set; }

    /// <summary>Time since the origin.</summary>
    public SimDuration Now => FromTicks(_clock.GetTimestamp() - _origin);

    /// <summary>Starts a span that is recorded when the returned scope is disposed.</summary>
    public SpanScope Begin(string resource, string operation, int layer) => new(this, resource, operation, layer, Now);

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
        private readonly int _layer, _step;
        private readonly SimDuration _start;

        internal SpanScope(SpanTrace trace, string resource, string operation, int layer, SimDuration start)
        {
            _trace = trace;
            _resource = resource;
            _operation = operation;
            _layer = layer;
            _start = start;
            _step = trace.CurrentStep;
        }

        /// <summary>Records the span ending now.</summary>
        public void Dispose() => _trace?.Add(new TraceSpan(_step, _resource, _operation, _layer, _start, _trace.Now));
    }
}

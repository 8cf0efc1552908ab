using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Metrics;

/// <summary>Summaries of a step's spans.</summary>
public static class TraceStats
{
    /// <summary>Total time covered by spans of <paramref name="resource"/> (optionally only those <paramref name="where"/> accepts), overlapping spans merged: busy time, not summed time.</summary>
    public static SimDuration Busy(IEnumerable<TraceSpan> spans, string resource, Func<TraceSpan, bool>? where = null)
    {
        long busy = 0, end = long.MinValue;
        foreach (TraceSpan s in spans.Where(s => s.Resource == resource && (where is null || where(s))).OrderBy(s => s.Start))
        {
            long a = Math.Max(s.Start.Nanoseconds, end), b = s.End.Nanoseconds;
            if (b > a) busy += b - a;
            end = Math.Max(end, b);
        }
        return new SimDuration(busy);
    }

    /// <summary>Busy time of the spans <paramref name="where"/> accepts, whatever their resource.</summary>
    public static SimDuration Busy(IEnumerable<TraceSpan> spans, Func<TraceSpan, bool> where) =>
        Busy(spans.Where(where).Select(s => s with { Resource = "" }), "");

    /// <summary>Whether a span is an NVMe write (its operation is a write kind).</summary>
    public static bool IsWrite(TraceSpan s) => s.Operation is "optimizer_write" or "param_write_back" or "grad_write";

    /// <summary>
    /// The spans that executed operations of <paramref name="program"/> (those with an op id), as the simulator's
    /// <see cref="Span"/>s: resource, kind and phase from the operation, times in nanoseconds from the trace's origin.
    /// </summary>
    public static IReadOnlyList<Span> ProgramSpans(IEnumerable<TraceSpan> spans, StepProgram program) =>
        spans.Where(s => s.OpId >= 0 && s.OpId < program.Ops.Count).Select(s =>
        {
            Operation op = program.Ops[s.OpId];
            return new Span(s.OpId, op.Resource, op.Kind, op.Phase, op.TraceLayer, op.MicroBatch, s.Start.Nanoseconds, s.End.Nanoseconds, s.Bytes);
        }).ToList();

    /// <summary>Gigabytes (10⁹) per second of <paramref name="bytes"/> over <paramref name="time"/>; 0 when either is 0.</summary>
    public static double GBps(Bytes bytes, SimDuration time) => time.Nanoseconds == 0 || bytes.Value == 0 ? 0 : bytes.Value / (double)time.Nanoseconds;
}

using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Simulation;

/// <summary>
/// The one definition of a step's phases, for predicted and measured spans alike. The step's wall time
/// [start, end] is cut at three kinds of instant: where each micro-batch's forward compute begins (the
/// first micro-batch's forward begins at the step's start), where its backward compute begins, and where
/// the last backward-phase operation on any resource ends (the last gradient out, or the last update the
/// overlapped schedule hides behind backward). Forward is the sum over micro-batches of [forward begins,
/// backward begins); backward the sum of [backward begins, next forward begins), the last up to the end of
/// backward; optimizer the exposed rest. The three add up to the step's wall time, and with one
/// micro-batch they are the simulator's historic phases.
/// </summary>
public static class PhaseRule
{
    extension(PhaseTimes)
    {
        /// <summary>Phases of one step's spans, over the step's extent (earliest start to latest end).</summary>
        public static PhaseTimes From(IReadOnlyCollection<Span> spans) =>
            spans.Count == 0 ? new PhaseTimes(SimDuration.Zero, SimDuration.Zero, SimDuration.Zero)
                : From(spans, spans.Min(s => s.StartNs), spans.Max(s => s.EndNs));

        /// <summary>Phases of one step's spans over [<paramref name="startNs"/>, <paramref name="endNs"/>] (the step's measured bounds, which may include work outside the program).</summary>
        public static PhaseTimes From(IEnumerable<Span> spans, long startNs, long endNs)
        {
            var forwardBegins = new SortedDictionary<int, long>();
            var backwardBegins = new SortedDictionary<int, long>();
            long backwardEnds = long.MinValue;
            foreach (var s in spans)
            {
                if (s.Resource == ResourceKind.Compute)
                {
                    var begins = s.Phase == StepPhase.Forward ? forwardBegins : s.Phase == StepPhase.Backward ? backwardBegins : null;
                    if (begins is not null)
                        begins[s.MicroBatch] = begins.TryGetValue(s.MicroBatch, out long t) ? Math.Min(t, s.StartNs) : s.StartNs;
                }
                if (s.Phase == StepPhase.Backward) backwardEnds = Math.Max(backwardEnds, s.EndNs);
            }
            if (backwardBegins.Count == 0) return new PhaseTimes(new SimDuration(Math.Max(0, endNs - startNs)), SimDuration.Zero, SimDuration.Zero);
            backwardEnds = Math.Clamp(backwardEnds, startNs, endNs);
            long forward = 0, backward = 0;
            var microBatches = backwardBegins.Keys.ToArray();
            for (int i = 0; i < microBatches.Length; i++)
            {
                int mb = microBatches[i];
                long begin = i == 0 ? startNs : forwardBegins.GetValueOrDefault(mb, backwardBegins[mb]);
                long backwardBegin = Math.Max(begin, backwardBegins[mb]);
                long next = i + 1 < microBatches.Length
                    ? forwardBegins.GetValueOrDefault(microBatches[i + 1], backwardBegins[microBatches[i + 1]])
                    : backwardEnds;
                forward += backwardBegin - begin;
                backward += Math.Max(0, next - backwardBegin);
            }
            return new PhaseTimes(new SimDuration(forward), new SimDuration(backward), new SimDuration(Math.Max(0, endNs - backwardEnds)));
        }
    }
}

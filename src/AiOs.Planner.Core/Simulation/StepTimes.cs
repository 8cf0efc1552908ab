using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Simulation;

/// <summary>The time of a step without its memory trace: what the tuner needs, thousands of times a second.</summary>
public readonly record struct StepTiming(SimDuration Time, ResourceKind Bottleneck, double TokensPerSecond);

/// <summary>
/// A one-pass list schedule of a step program: each operation starts when its dependencies and the
/// previous operation on its resource have ended. That is exactly what <see cref="StepSimulator"/>'s
/// resource processes do on the event kernel (a property test holds the two equal), without the
/// kernel's bookkeeping or the memory trace, so the tuner can afford it for every candidate.
/// </summary>
public static class StepTimes
{
    private static readonly int ResourceCount = Enum.GetValues<ResourceKind>().Length;

    public static StepTiming Compute(StepProgram program, StepCosts costs)
    {
        var ops = program.Ops;
        int n = ops.Count;
        int hidden = program.Model.HiddenSize;
        var end = new long[n];
        var start = new long[n];
        var duration = new long[n];
        var previousOnResource = new int[n];
        var resourceFree = new long[ResourceCount];
        var lastOn = new int[ResourceCount];
        Array.Fill(lastOn, -1);
        long stepEnd = 0;
        int last = -1;
        for (int i = 0; i < n; i++)
        {
            var op = ops[i];
            int r = (int)op.Resource;
            long t = resourceFree[r];
            foreach (int dep in op.Deps)
                if (end[dep] > t) t = end[dep];
            long d = costs.Duration(op, hidden).Nanoseconds;
            start[i] = t;
            duration[i] = d;
            end[i] = t + d;
            resourceFree[r] = end[i];
            previousOnResource[i] = lastOn[r];
            lastOn[r] = i;
            if (end[i] > stepEnd || last < 0)
            {
                stepEnd = end[i];
                last = i;
            }
        }
        // Walk the critical path back from the operation that ends last, as StepSimulator does.
        var onPath = new long[ResourceCount];
        for (int current = last; current >= 0;)
        {
            var op = ops[current];
            onPath[(int)op.Resource] += duration[current];
            int next = -1;
            long best = -1;
            foreach (int dep in op.Deps)
                if (end[dep] > best) (best, next) = (end[dep], dep);
            int prev = previousOnResource[current];
            if (prev >= 0 && end[prev] > best) (best, next) = (end[prev], prev);
            current = best >= 0 && best <= start[current] ? next : -1;
        }
        int bottleneck = 0;
        for (int r = 1; r < ResourceCount; r++)
            if (onPath[r] > onPath[bottleneck]) bottleneck = r;
        double seconds = stepEnd / 1e9;
        return new StepTiming(new SimDuration(stepEnd), (ResourceKind)bottleneck, seconds > 0 ? program.TokensPerGpu * program.Gpus / seconds : 0);
    }
}

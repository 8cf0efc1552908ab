using AiOs.Planner.Memory;
using AiOs.Planner.Simulation.Kernel;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Simulation;

/// <summary>
/// Runs a step program on the event kernel: one process per resource serves that resource's operations in
/// program order, each waiting for its dependencies and then holding the resource for the operation's
/// duration. Memory effects change the tiers' levels as operations start and end.
/// </summary>
public static class StepSimulator
{
    /// <summary>Simulates <paramref name="program"/> with durations from the machine's <paramref name="costs"/>.</summary>
    public static StepResult Simulate(StepProgram program, StepCosts costs, bool keepTimeline = false)
    {
        if (!costs.HasDrives && program.Ops.Any(o => o.Resource == ResourceKind.Nvme))
            throw new InvalidOperationException("The settings offload to NVMe but the hardware profile lists no drive.");
        int hidden = program.Model.HiddenSize;
        return Simulate(program, op => costs.Duration(op, hidden), keepTimeline);
    }

    /// <summary>Simulates <paramref name="program"/> with the given duration of each operation.</summary>
    public static StepResult Simulate(StepProgram program, Func<Operation, SimDuration> duration, bool keepTimeline = false)
    {
        var ops = program.Ops;
        int n = ops.Count;
        var durations = new long[n];
        for (int i = 0; i < n; i++) durations[i] = duration(ops[i]).Nanoseconds;
        var start = new long[n];
        var end = new long[n];
        var tiers = new LevelTracker[TierCount];
        foreach (var t in Enum.GetValues<MemoryTier>()) tiers[(int)t] = new LevelTracker(program.StaticLevels.GetValueOrDefault(t), keepTimeline);

        // Signal i fires when operation i ends.
        var kernel = new SimKernel(signals: n);
        var queues = new List<int>?[ResourceCount];
        foreach (var op in ops) (queues[(int)op.Resource] ??= []).Add(op.Id);
        foreach (var queue in queues)
            if (queue is not null) kernel.Start(Serve(queue));
        kernel.Run();
        if (kernel.Unfinished > 0)
            throw new InvalidOperationException($"The step program deadlocked with {kernel.Unfinished} resource(s) waiting; the scheduler emitted an operation before one it depends on.");

        return Summarize(program, ops, start, end, durations, tiers, keepTimeline);

        IEnumerable<Wait> Serve(List<int> queue)
        {
            foreach (int id in queue)
            {
                foreach (int dep in ops[id].Deps)
                    if (!kernel.Fired(dep)) yield return Wait.Until(dep);
                start[id] = kernel.Now;
                Apply(ops[id], atEnd: false);
                yield return Wait.For(new SimDuration(durations[id]));
                end[id] = kernel.Now;
                Apply(ops[id], atEnd: true);
                kernel.Fire(id);
            }
        }

        void Apply(Operation op, bool atEnd)
        {
            foreach (var e in op.Effects)
                if (e.AtEnd == atEnd) tiers[(int)e.Tier].Change(kernel.Now, e.Bytes);
        }
    }

    private static readonly int TierCount = Enum.GetValues<MemoryTier>().Length;
    private static readonly int ResourceCount = Enum.GetValues<ResourceKind>().Length;

    private static StepResult Summarize(StepProgram program, IReadOnlyList<Operation> ops, long[] start, long[] end, long[] durations,
        LevelTracker[] tiers, bool keepTimeline)
    {
        int n = ops.Count;
        long stepEnd = n == 0 ? 0 : end.Max();
        var busyNs = new long[ResourceCount];
        var used = new bool[ResourceCount];
        long nvmeRead = 0, nvmeWrite = 0, h2d = 0, d2h = 0, network = 0;
        double modelFlops = 0;
        for (int i = 0; i < n; i++)
        {
            var op = ops[i];
            busyNs[(int)op.Resource] += durations[i];
            used[(int)op.Resource] = true;
            switch (op.Resource)
            {
                case ResourceKind.Nvme when op.IsWrite: nvmeWrite += op.Bytes.Value; break;
                case ResourceKind.Nvme: nvmeRead += op.Bytes.Value; break;
                case ResourceKind.H2d or ResourceKind.QueuedH2d: h2d += op.Bytes.Value; break;
                case ResourceKind.D2h: d2h += op.Bytes.Value; break;
                case ResourceKind.Collective: network += op.Bytes.Value; break;
            }
            if (op.Kind is OpKind.Forward or OpKind.Backward) modelFlops += op.Flops;
        }
        var busy = new Dictionary<ResourceKind, SimDuration>();
        for (int r = 0; r < ResourceCount; r++)
            if (used[r]) busy[(ResourceKind)r] = new SimDuration(busyNs[r]);
        var critical = CriticalPath(ops, start, end, durations);
        var bottleneck = critical.OrderByDescending(kv => kv.Value.Nanoseconds).ThenBy(kv => kv.Key).Select(kv => kv.Key).FirstOrDefault();
        double seconds = stepEnd / 1e9;
        long tokens = program.TokensPerGpu * program.Gpus;
        int nodesShare = program.GpusPerNode;
        return new StepResult
        {
            Time = new SimDuration(stepEnd),
            Phases = PhaseTimes.From(SpansOf(ops, start, end), 0, stepEnd),
            TokensPerSecond = seconds > 0 ? tokens / seconds : 0,
            ModelTflopsPerGpu = seconds > 0 ? modelFlops / seconds / 1e12 : 0,
            Bottleneck = bottleneck,
            CriticalPath = critical,
            Busy = busy,
            // NVMe traffic is the node's: every GPU process of the node moves the same.
            Traffic = new Traffic(new Bytes(nvmeRead * nodesShare), new Bytes(nvmeWrite * nodesShare), new Bytes(h2d), new Bytes(d2h), new Bytes(network)),
            MemoryPeaks = Enum.GetValues<MemoryTier>().ToDictionary(t => t, t => new Bytes(tiers[(int)t].Peak)),
            MemoryTimeline = keepTimeline ? Enum.GetValues<MemoryTier>().ToDictionary(t => t, t => tiers[(int)t].History) : null,
            Spans = keepTimeline ? SpansOf(ops, start, end) : null,
            Operations = n,
        };
    }

    /// <summary>Every operation's span, in program order.</summary>
    private static List<Span> SpansOf(IReadOnlyList<Operation> ops, long[] start, long[] end) =>
        Enumerable.Range(0, ops.Count).Select(i => new Span(i, ops[i].Resource, ops[i].Kind, ops[i].Phase, ops[i].TraceLayer, ops[i].MicroBatch, start[i], end[i], ops[i].Bytes.Value)).ToList();

    /// <summary>
    /// Walks back from the operation that ends last through whichever predecessor (a dependency or the
    /// previous operation on the same resource) ended exactly when it started, charging each operation's
    /// duration to its resource.
    /// </summary>
    private static Dictionary<ResourceKind, SimDuration> CriticalPath(IReadOnlyList<Operation> ops, long[] start, long[] end, long[] durations)
    {
        var result = new Dictionary<ResourceKind, SimDuration>();
        int n = ops.Count;
        if (n == 0) return result;
        var previousOnResource = new int[n];
        var lastOn = new int[ResourceCount];
        Array.Fill(lastOn, -1);
        for (int i = 0; i < n; i++)
        {
            previousOnResource[i] = lastOn[(int)ops[i].Resource];
            lastOn[(int)ops[i].Resource] = i;
        }
        int current = 0;
        for (int i = 1; i < n; i++) if (end[i] > end[current]) current = i;
        while (current >= 0)
        {
            var op = ops[current];
            result[op.Resource] = result.GetValueOrDefault(op.Resource) + new SimDuration(durations[current]);
            int next = -1;
            long best = -1;
            foreach (int dep in op.Deps)
                if (end[dep] > best) (best, next) = (end[dep], dep);
            int prev = previousOnResource[current];
            if (prev >= 0 && end[prev] > best) (best, next) = (end[prev], prev);
            current = best >= 0 && best <= start[current] ? next : -1;
        }
        return result;
    }
}

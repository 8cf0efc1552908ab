using System.Collections.Concurrent;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Engine.Tests;

/// <summary>The program executor's rule: per resource in program order, each operation after its dependencies; failures surface as themselves.</summary>
public sealed class ProgramExecutorTests
{
    private static Operation Op(int id, OpKind kind, ResourceKind resource, params int[] deps) => new()
    {
        Id = id, Kind = kind, Resource = resource, Phase = StepPhase.Forward, Unit = UnitId.Layer(id), Deps = deps,
    };

    // A read, an upload, a compute, a download and an NVMe write per layer; the next layer's read does not wait for this one's compute.
    private static List<Operation> Pipeline(int layers)
    {
        var ops = new List<Operation>();
        int previousCompute = -1;
        for (int i = 0; i < layers; i++)
        {
            int read = ops.Count;
            ops.Add(Op(read, OpKind.ParamRead, ResourceKind.Nvme));
            ops.Add(Op(read + 1, OpKind.ParamUpload, ResourceKind.H2d, read));
            ops.Add(Op(read + 2, OpKind.Forward, ResourceKind.Compute, previousCompute >= 0 ? [read + 1, previousCompute] : [read + 1]));
            previousCompute = read + 2;
            ops.Add(Op(read + 3, OpKind.GradDownload, ResourceKind.D2h, read + 2));
            ops.Add(Op(read + 4, OpKind.GradWrite, ResourceKind.Nvme, read + 3));
        }
        return ops;
    }

    private static Dictionary<OpKind, Action<Operation>> All(Action<Operation> handler) =>
        Enum.GetValues<OpKind>().ToDictionary(k => k, _ => handler);

    [Fact]
    public void Given_a_program_When_executed_Then_each_resource_follows_program_order_and_no_operation_starts_before_its_dependencies_end()
    {
        var ops = Pipeline(6);
        var trace = new SpanTrace(TimeProvider.System);
        var events = new ConcurrentQueue<(int Id, bool End)>();
        int computeThread = -1;
        using var executor = new ProgramExecutor(trace);

        executor.Run(ops, All(op =>
        {
            events.Enqueue((op.Id, false));
            if (op.Resource == ResourceKind.Compute) computeThread = Environment.CurrentManagedThreadId;
            Thread.SpinWait(1000);
            events.Enqueue((op.Id, true));
        }));

        var order = events.ToList();
        int Position(int id, bool end) => order.IndexOf((id, end));
        foreach (var op in ops)
            foreach (int dep in op.Deps)
                Assert.True(Position(dep, true) < Position(op.Id, false), $"{op} started before #{dep} ended");
        foreach (var group in ops.GroupBy(o => o.Resource))
        {
            var started = group.Select(o => o.Id).OrderBy(id => Position(id, false)).ToArray();
            Assert.Equal(group.Select(o => o.Id).ToArray(), started);
        }
        Assert.Equal(Environment.CurrentManagedThreadId, computeThread);
        var spans = trace.Spans().Where(s => s.OpId >= 0).ToList();
        Assert.Equal(ops.Select(o => o.Id).Order(), spans.Select(s => s.OpId).Order());
        Assert.All(spans, s => Assert.Equal(SpanTrace.Name(ops[s.OpId].Kind), s.Operation));
    }

    [Fact]
    public void Given_a_worker_handler_that_fails_When_executed_Then_its_own_exception_surfaces_and_nothing_after_it_runs()
    {
        var ops = Pipeline(4);
        var ran = new ConcurrentBag<int>();
        using var executor = new ProgramExecutor(new SpanTrace(TimeProvider.System));

        var e = Assert.Throws<InvalidDataException>(() => executor.Run(ops, All(op =>
        {
            if (op.Id == 6) throw new InvalidDataException("checksum mismatch in param-u1");
            ran.Add(op.Id);
        })));

        Assert.Contains("param-u1", e.Message);
        // Layer 1's compute depends on its failed upload: neither it nor anything after it on the compute thread ran.
        Assert.DoesNotContain(ran, id => ops[id].Resource == ResourceKind.Compute && id > 5);
    }

    [Fact]
    public void Given_a_compute_handler_that_fails_When_executed_Then_the_workers_stop_and_the_exception_is_not_wrapped()
    {
        var ops = Pipeline(4);
        using var executor = new ProgramExecutor(new SpanTrace(TimeProvider.System));
        var e = Assert.Throws<InsufficientExecutionStackException>(() => executor.Run(ops, All(op =>
        {
            if (op.Kind == OpKind.Forward) throw new InsufficientExecutionStackException("device");
        })));
        Assert.Equal("device", e.Message);
    }

    [Fact]
    public void Given_a_kind_without_handler_When_run_Then_it_is_refused_by_name_before_anything_runs()
    {
        var ops = Pipeline(1);
        int ran = 0;
        using var executor = new ProgramExecutor(new SpanTrace(TimeProvider.System));
        var handlers = All(_ => Interlocked.Increment(ref ran));
        handlers.Remove(OpKind.GradWrite);

        var e = Assert.Throws<ArgumentException>(() => executor.Run(ops, handlers));

        Assert.Contains("GradWrite", e.Message);
        Assert.Equal(0, ran);
    }

    [Fact]
    public void Given_a_part_of_a_program_When_run_Then_dependencies_outside_it_count_as_done()
    {
        var ops = Pipeline(2);
        var ran = new ConcurrentBag<int>();
        using var executor = new ProgramExecutor(new SpanTrace(TimeProvider.System));

        executor.Run(ops.Skip(5).ToList(), All(op => ran.Add(op.Id)));

        Assert.Equal(Enumerable.Range(5, 5), ran.Order());
    }
}

using System.Runtime.ExceptionServices;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Engine.Execution;

/// <summary>
/// Executes step-program operations the way <see cref="Simulation.StepSimulator"/> prices them: one server per
/// resource takes that resource's operations in program order, each once its dependencies have ended, and calls
/// the handler of its <see cref="OpKind"/>. Compute is served on the calling thread (TorchSharp's dispose scopes
/// and autograd state stay there); H2d, D2h, NVMe, CPU, host-sums and collective operations on one worker thread each.
/// Every operation gets one span in the trace, carrying its id; time the compute thread waits for another
/// resource is a <c>stall</c> span (op id −1) named after the operation it waited for.
/// </summary>
/// <remarks>
/// A handler that throws stops the other servers (each finishes the operation in hand and takes no other), and
/// <see cref="Run"/> rethrows that handler's own exception once they have stopped. Operations whose
/// dependencies lie outside the list run (for example the optimizer part of a program after the backward part)
/// count those dependencies as done.
/// </remarks>
public sealed class ProgramExecutor : IDisposable
{
    private readonly SpanTrace _trace;
    private readonly object _gate = new();
    private readonly List<Thread> _workers = [];
    private bool[] _done = [];
    private Dictionary<int, int> _index = [];
    private IReadOnlyList<Operation> _ops = [];
    private ExceptionDispatchInfo? _failure;
    private bool _disposed;

    /// <summary>An executor recording spans in <paramref name="trace"/>.</summary>
    public ProgramExecutor(SpanTrace trace) => _trace = trace;

    /// <summary>Operations executed by the last <see cref="Run"/>, in the order they ended.</summary>
    public IReadOnlyList<int> Completed => _completed;
    private readonly List<int> _completed = [];

    /// <summary>
    /// Runs <paramref name="ops"/> (a program's operations, or a part of them, in program order) with
    /// <paramref name="handlers"/>; returns when every one has ended.
    /// </summary>
    /// <exception cref="ArgumentException">An operation's kind has no handler, or the list is not in topological order.</exception>
    public void Run(IReadOnlyList<Operation> ops, IReadOnlyDictionary<OpKind, Action<Operation>> handlers)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var missing = ops.Select(o => o.Kind).Distinct().Where(k => !handlers.ContainsKey(k)).ToArray();
        if (missing.Length > 0) throw new ArgumentException($"No handler for {string.Join(", ", missing)}: the engine cannot execute this program.", nameof(handlers));
        _index = new Dictionary<int, int>(ops.Count);
        for (int i = 0; i < ops.Count; i++)
        {
            foreach (int dep in ops[i].Deps)
                if (dep >= ops[i].Id) throw new ArgumentException($"{ops[i]} depends on #{dep}, which does not come before it.", nameof(ops));
            _index[ops[i].Id] = i;
        }
        _ops = ops;
        _done = new bool[ops.Count];
        _failure = null;
        _completed.Clear();
        var queues = ops.GroupBy(o => o.Resource).ToDictionary(g => g.Key, g => g.ToArray());
        _workers.Clear();
        foreach (var (resource, queue) in queues)
        {
            if (resource == ResourceKind.Compute) continue;
            var thread = new Thread(() => Serve(queue, handlers, stalls: false)) { IsBackground = true, Name = $"aios-{resource}".ToLowerInvariant() };
            _workers.Add(thread);
            thread.Start();
        }
        try
        {
            if (queues.TryGetValue(ResourceKind.Compute, out var compute)) Serve(compute, handlers, stalls: true);
        }
        finally
        {
            Join();
        }
        _failure?.Throw();
    }

    /// <summary>One resource's server: its operations in order, each after its dependencies.</summary>
    private void Serve(Operation[] queue, IReadOnlyDictionary<OpKind, Action<Operation>> handlers, bool stalls)
    {
        foreach (Operation op in queue)
        {
            if (!WaitForDependencies(op, stalls)) return;
            try
            {
                using (_trace.Begin(op)) handlers[op.Kind](op);
            }
            catch (Exception e)
            {
                lock (_gate)
                {
                    _failure ??= ExceptionDispatchInfo.Capture(e);
                    Monitor.PulseAll(_gate);
                }
                return;
            }
            lock (_gate)
            {
                _done[_index[op.Id]] = true;
                _completed.Add(op.Id);
                Monitor.PulseAll(_gate);
            }
        }
    }

    /// <summary>Blocks until <paramref name="op"/>'s dependencies have ended; false when another server failed.</summary>
    private bool WaitForDependencies(Operation op, bool stalls)
    {
        lock (_gate)
        {
            int pending = Pending(op);
            if (pending < 0) return _failure is null;
            Operation awaited = OpOf(pending);
            SpanTrace.SpanScope? stall = stalls ? _trace.Stall(awaited.Kind, awaited.TraceLayer) : null;
            try
            {
                while (_failure is null && Pending(op) >= 0) Monitor.Wait(_gate);
            }
            finally
            {
                stall?.Dispose();
            }
            return _failure is null;
        }
    }

    /// <summary>The first dependency of <paramref name="op"/> not yet done (−1 when all are); call under the gate.</summary>
    private int Pending(Operation op)
    {
        foreach (int dep in op.Deps)
            if (_index.TryGetValue(dep, out int i) && !_done[i]) return dep;
        return -1;
    }

    /// <summary>The operation of id <paramref name="id"/> in this run.</summary>
    private Operation OpOf(int id) => _ops[_index[id]];

    private void Join()
    {
        foreach (Thread t in _workers) t.Join();
        _workers.Clear();
    }

    /// <summary>Waits for any work still in flight.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        lock (_gate)
        {
            _failure ??= ExceptionDispatchInfo.Capture(new ObjectDisposedException(nameof(ProgramExecutor)));
            Monitor.PulseAll(_gate);
        }
        Join();
    }
}

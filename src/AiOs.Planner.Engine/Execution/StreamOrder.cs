using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Engine.Execution;

/// <summary>The device calls <see cref="StreamOrder"/> makes: CUDA streams and events (<see cref="CopyStream"/>), or a recording fake in tests.</summary>
internal interface IStreamEvents
{
    /// <summary>The stream a resource's operations queue their device work on: compute the default stream (0), H2d and D2h their copy streams.</summary>
    nint StreamOf(ResourceKind resource);

    /// <summary>A new event, kept for the streams' life.</summary>
    nint NewEvent();

    /// <summary>Marks the point in <paramref name="stream"/> that <paramref name="e"/> completes at.</summary>
    void Record(nint e, nint stream);

    /// <summary>Makes later work on <paramref name="stream"/> wait for <paramref name="e"/>; the host does not wait.</summary>
    void Wait(nint stream, nint e);

    /// <summary>Blocks the host until <paramref name="e"/> has completed.</summary>
    void Synchronize(nint e);
}

/// <summary>
/// Turns the step program's dependencies into stream order on a GPU with copy streams. A handler on a device
/// resource (compute, H2d, D2h) only queues its work, so an operation "ends" for the executor when its work is
/// queued, not done: <see cref="After"/> records an event on the operation's stream, and <see cref="Before"/>
/// makes the next operation wait for the events of its dependencies — its stream waits when it queues device work
/// on another stream (compute waits for the upload of its unit, an upload for the compute and gradient download
/// that free its device slot, a download for the backward that made the gradients), and the host waits when it is
/// a host operation (NVMe, CPU) that reads what a device operation produced or must not overwrite what a copy still
/// reads (the optimizer after a gradient download, a staging read after the upload from that staging slot).
/// </summary>
/// <remarks>
/// This is the old copy-stream pattern (compute waits for the upload's event, the download waits for backward's,
/// the host waits before it reads a download) with the ordering read from the program rather than coded per store.
/// Events are re-recorded every step; a wait on an event not yet recorded (an operation not run this step) returns at once.
/// </remarks>
internal sealed class StreamOrder
{
    private readonly IStreamEvents _device;
    private readonly Dictionary<int, Operation> _ops;
    private readonly Dictionary<int, nint> _events = [];

    /// <summary>Ordering for <paramref name="program"/>'s operations with <paramref name="device"/>'s streams; one event per device operation.</summary>
    public StreamOrder(StepProgram program, IStreamEvents device)
    {
        _device = device;
        _ops = program.Ops.ToDictionary(o => o.Id);
        foreach (Operation op in program.Ops)
            if (OnDevice(op.Resource)) _events[op.Id] = device.NewEvent();
    }

    /// <summary>Whether operations of <paramref name="resource"/> queue work on a stream rather than finish it on the host.</summary>
    public static bool OnDevice(ResourceKind resource) => resource is ResourceKind.Compute or ResourceKind.H2d or ResourceKind.D2h;

    /// <summary>Called on <paramref name="op"/>'s server before its handler: its stream, or the host, waits for its dependencies' device work.</summary>
    public void Before(Operation op)
    {
        bool onDevice = OnDevice(op.Resource);
        nint stream = onDevice ? _device.StreamOf(op.Resource) : 0;
        foreach (int dep in op.Deps)
        {
            if (!_events.TryGetValue(dep, out nint e)) continue;
            if (!onDevice) _device.Synchronize(e);
            // One stream runs its work in the order queued: a dependency queued on the same stream needs no event.
            else if (_device.StreamOf(_ops[dep].Resource) != stream) _device.Wait(stream, e);
        }
    }

    /// <summary>Called on <paramref name="op"/>'s server after its handler: records the point its queued work ends at.</summary>
    public void After(Operation op)
    {
        if (_events.TryGetValue(op.Id, out nint e)) _device.Record(e, _device.StreamOf(op.Resource));
    }

    /// <summary>Waits on the host for every device operation of the program (its last recorded work).</summary>
    public void SynchronizeAll()
    {
        foreach (nint e in _events.Values) _device.Synchronize(e);
    }

    /// <summary><paramref name="handlers"/> with each wrapped in <see cref="Before"/> and <see cref="After"/>.</summary>
    public Dictionary<OpKind, Action<Operation>> Wrap(IReadOnlyDictionary<OpKind, Action<Operation>> handlers) =>
        handlers.ToDictionary(kv => kv.Key, kv =>
        {
            Action<Operation> handler = kv.Value;
            return (Action<Operation>)(op =>
            {
                Before(op);
                handler(op);
                After(op);
            });
        });
}

using AiOs.Planner.Engine.Native;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Execution;

/// <summary>
/// Host↔device copies on their own CUDA streams (one per direction, so uploads and downloads use both copy
/// engines), so the next unit's upload and the last unit's gradient download overlap compute (TorchSharp queues
/// everything on the default stream, where a copy would wait for the kernels before it and the host would wait
/// for the copy). Ordering is by events: a copy first waits for everything already queued on the default
/// stream, and the default stream (or the host, for downloads) waits for the copy before its data is used.
/// With the step program (<see cref="StreamOrder"/>) the ordering comes from the program's dependencies instead:
/// <see cref="UploadQueued"/> issues a copy with no wait of its own.
/// </summary>
internal sealed class CopyStream : IDisposable, IStreamEvents
{
    private readonly nint _stream = CudaDriver.CreateCopyStream();
    private readonly nint _down = CudaDriver.CreateCopyStream();
    private readonly List<nint> _events = [];

    /// <summary>An event for one slot's copies (kept for the stream's life).</summary>
    public nint NewEvent()
    {
        nint e = CudaDriver.CreateEvent();
        // Stores (D2h worker) and the trainer (compute thread) ask for events.
        lock (_events) _events.Add(e);
        return e;
    }

    /// <summary>
    /// Queues a copy of <paramref name="pinnedSource"/> into <paramref name="deviceTarget"/> (same bytes) after the
    /// default stream's current work, recording <paramref name="done"/> after it; <paramref name="mark"/> is scratch.
    /// </summary>
    public void Upload(Tensor deviceTarget, Tensor pinnedSource, nint mark, nint done)
    {
        long bytes = deviceTarget.numel() * deviceTarget.element_size();
        if (pinnedSource.numel() * pinnedSource.element_size() != bytes) throw new ArgumentException("Source and target sizes differ.", nameof(pinnedSource));
        CudaDriver.Record(mark, 0);
        CudaDriver.Wait(_stream, mark);
        CudaDriver.CopyToDeviceAsync(CudaDriver.DataOf(deviceTarget), CudaDriver.DataOf(pinnedSource), bytes, _stream);
        CudaDriver.Record(done, _stream);
    }

    /// <summary>
    /// Queues a copy of <paramref name="deviceSource"/> into pinned <paramref name="hostTarget"/> after the default
    /// stream's current work (which produced the source), recording <paramref name="done"/> after it. The source must
    /// stay alive, and the target unread, until <paramref name="done"/> completes.
    /// </summary>
    public void Download(Tensor hostTarget, Tensor deviceSource, nint mark, nint done)
    {
        long bytes = deviceSource.numel() * deviceSource.element_size();
        if (hostTarget.numel() * hostTarget.element_size() != bytes) throw new ArgumentException("Source and target sizes differ.", nameof(hostTarget));
        CudaDriver.Record(mark, 0);
        CudaDriver.Wait(_down, mark);
        CudaDriver.CopyToHostAsync(CudaDriver.DataOf(hostTarget), CudaDriver.DataOf(deviceSource), bytes, _down);
        CudaDriver.Record(done, _down);
    }

    /// <summary>
    /// Queues a copy of <paramref name="bytes"/> from host memory at <paramref name="host"/> into <paramref name="deviceTarget"/>
    /// on the upload stream, waiting for nothing the caller has not made the stream wait for (<see cref="StreamOrder.Before"/>).
    /// Pinned host memory is copied by DMA while compute runs; pageable memory is staged by the driver before this returns.
    /// </summary>
    public void UploadQueued(Tensor deviceTarget, nint host, long bytes)
    {
        if (deviceTarget.numel() * deviceTarget.element_size() != bytes) throw new ArgumentException("Source and target sizes differ.", nameof(bytes));
        CudaDriver.CopyToDeviceAsync(CudaDriver.DataOf(deviceTarget), host, bytes, _stream);
    }

    /// <inheritdoc/>
    public nint StreamOf(Simulation.Program.ResourceKind resource) => resource switch
    {
        Simulation.Program.ResourceKind.H2d => _stream,
        Simulation.Program.ResourceKind.D2h => _down,
        _ => 0,
    };

    /// <inheritdoc/>
    public void Record(nint e, nint stream) => CudaDriver.Record(e, stream);

    /// <inheritdoc/>
    public void Wait(nint stream, nint e) => CudaDriver.Wait(stream, e);

    /// <inheritdoc/>
    public void Synchronize(nint e) => CudaDriver.Synchronize(e);

    /// <summary>Makes the default stream's later work wait for <paramref name="done"/>.</summary>
    public static void DefaultWaits(nint done) => CudaDriver.Wait(0, done);

    public void Dispose()
    {
        cuda.synchronize();
        CudaDriver.Destroy([_stream, _down], _events);
    }
}

using AiOs.Planner.Engine.Native;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Execution;

/// <summary>
/// Host↔device copies on their own CUDA streams (one per direction, so uploads and downloads use both copy
/// engines), so the next unit's upload and the last unit's gradient download overlap compute (TorchSharp queues
/// everything on the default stream, where a copy would wait for the kernels before it and the host would wait
/// for the copy). Ordering is by events, from the step program's dependencies (<see cref="StreamOrder"/>):
/// <see cref="UploadQueued"/> issues a copy with no wait of its own; <see cref="Download"/> also waits for what is
/// already queued on the default stream (the packing that made its source). Its calls work from any thread: each
/// binds the streams' CUDA context to the calling thread first.
/// </summary>
internal sealed class CopyStream : IDisposable, IStreamEvents
{
    private readonly nint _stream = CudaDriver.CreateCopyStream();
    private readonly nint _down = CudaDriver.CreateCopyStream();
    /// <summary>The context the streams were made in (current on the creating thread); bound on each worker thread before its first call.</summary>
    private readonly nint _context = CudaDriver.CurrentContext();
    private readonly List<nint> _events = [];
    [ThreadStatic] private static nint t_bound;

    /// <summary>Makes the streams' context current on the calling thread (the executor's H2d, D2h, NVMe and CPU workers have none of their own).</summary>
    private void Bind()
    {
        if (t_bound == _context) return;
        CudaDriver.MakeCurrent(_context);
        t_bound = _context;
    }

    /// <summary>An event for one slot's copies (kept for the stream's life).</summary>
    public nint NewEvent()
    {
        Bind();
        nint e = CudaDriver.CreateEvent();
        // Stores (D2h worker) and the trainer (compute thread) ask for events.
        lock (_events) _events.Add(e);
        return e;
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
        Bind();
        CudaDriver.Record(mark, 0);
        DownloadAfter(hostTarget, deviceSource, mark, done);
    }

    /// <summary>
    /// As <see cref="Download"/>, after <paramref name="mark"/>, which the caller recorded on the default stream right
    /// behind the work that made the source (so the copy does not wait for compute queued since). A <c>tail</c> is a second,
    /// small copy behind the first (a scalar computed with the source, into page-locked memory at its address), covered by
    /// the same <c>done</c>.
    /// </summary>
    public void DownloadAfter(Tensor hostTarget, Tensor deviceSource, nint mark, nint done, (nint Host, Tensor Source)? tail = null)
    {
        long bytes = deviceSource.numel() * deviceSource.element_size();
        if (hostTarget.numel() * hostTarget.element_size() != bytes) throw new ArgumentException("Source and target sizes differ.", nameof(hostTarget));
        Bind();
        CudaDriver.Wait(_down, mark);
        CudaDriver.CopyToHostAsync(CudaDriver.DataOf(hostTarget), CudaDriver.DataOf(deviceSource), bytes, _down);
        if (tail is var (host, source))
            CudaDriver.CopyToHostAsync(host, CudaDriver.DataOf(source), source.numel() * source.element_size(), _down);
        CudaDriver.Record(done, _down);
    }

    /// <summary>
    /// Copies contiguous <paramref name="deviceSource"/> into page-locked host memory at <paramref name="host"/> on the download
    /// stream, after what that stream was made to wait for (<see cref="StreamOrder.Before"/>), and blocks until it has landed
    /// (<paramref name="done"/> marks its end), so the caller may free the source at once.
    /// </summary>
    public void DownloadAndWait(nint host, Tensor deviceSource, nint done)
    {
        Bind();
        CudaDriver.CopyToHostAsync(host, CudaDriver.DataOf(deviceSource), deviceSource.numel() * deviceSource.element_size(), _down);
        CudaDriver.Record(done, _down);
        CudaDriver.Synchronize(done);
    }

    /// <summary>
    /// Queues a copy of <paramref name="bytes"/> from host memory at <paramref name="host"/> into <paramref name="deviceTarget"/>
    /// on the upload stream, waiting for nothing the caller has not made the stream wait for (<see cref="StreamOrder.Before"/>).
    /// Pinned host memory is copied by DMA while compute runs; pageable memory is staged by the driver before this returns.
    /// </summary>
    public void UploadQueued(Tensor deviceTarget, nint host, long bytes)
    {
        if (deviceTarget.numel() * deviceTarget.element_size() != bytes) throw new ArgumentException("Source and target sizes differ.", nameof(bytes));
        Bind();
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
    public void Record(nint e, nint stream)
    {
        Bind();
        CudaDriver.Record(e, stream);
    }

    /// <inheritdoc/>
    public void Wait(nint stream, nint e)
    {
        Bind();
        CudaDriver.Wait(stream, e);
    }

    /// <inheritdoc/>
    public void Synchronize(nint e)
    {
        Bind();
        CudaDriver.Synchronize(e);
    }


    public void Dispose()
    {
        cuda.synchronize();
        CudaDriver.Destroy([_stream, _down], _events);
    }
}

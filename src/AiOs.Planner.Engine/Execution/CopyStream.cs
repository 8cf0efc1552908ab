using AiOs.Planner.Engine.Native;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Execution;

/// <summary>
/// Host→device parameter copies on their own CUDA stream, so the next unit's upload overlaps the current unit's
/// compute (TorchSharp queues everything on the default stream, where a copy would wait for the kernels before
/// it). Ordering is by events: a copy into a slot first waits for everything already queued on the default
/// stream (the slot's previous unit's kernels), and the default stream waits for the copy before the slot is
/// used. The host never waits, except to recycle an event still in flight.
/// </summary>
internal sealed class CopyStream : IDisposable
{
    private readonly nint _stream = CudaDriver.CreateCopyStream();
    private readonly List<nint> _events = [];

    /// <summary>An event for one slot's copies (kept for the stream's life).</summary>
    public nint NewEvent()
    {
        nint e = CudaDriver.CreateEvent();
        _events.Add(e);
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

    /// <summary>Makes the default stream's later work wait for <paramref name="done"/>.</summary>
    public static void DefaultWaits(nint done) => CudaDriver.Wait(0, done);

    public void Dispose()
    {
        cuda.synchronize();
        CudaDriver.Destroy(_stream, _events);
    }
}

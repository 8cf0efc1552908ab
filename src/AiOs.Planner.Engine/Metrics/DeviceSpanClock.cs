using AiOs.Planner.Engine.Native;

namespace AiOs.Planner.Engine.Metrics;

/// <summary>
/// Times spans where the work runs, on the device, without making the host wait: a mark is an event queued in the
/// device's stream, and the marks are read together once the device has passed them (<see cref="Settle"/>). With it the
/// resident engine no longer synchronises after every operation, so the host queues the next layer's kernels while the
/// device runs this one's (issue 16: small models are launch-bound), and spans still measure the device's time.
/// </summary>
public interface IDeviceSpanClock : IDisposable
{
    /// <summary>Queues a mark at the device stream's current position; returns its number within the marks not yet settled.</summary>
    int Mark();

    /// <summary>
    /// Waits until the device has passed every mark, then returns, per mark (by number), how long before the moment the wait
    /// ended the device reached it, in nanoseconds; the marks are then forgotten (numbers restart at 0).
    /// </summary>
    long[] Settle();
}

/// <summary>
/// <see cref="IDeviceSpanClock"/> on a CUDA device: timing events recorded on the default stream (the stream TorchSharp's
/// kernels run on), reused from step to step, read with cuEventElapsedTime against one anchor event recorded and waited for
/// at <see cref="Settle"/>.
/// </summary>
public sealed class CudaSpanClock : IDeviceSpanClock
{
    private readonly List<nint> _events = [];
    private nint _anchor;
    private int _used;

    /// <inheritdoc/>
    public int Mark()
    {
        if (_used == _events.Count) _events.Add(CudaDriver.CreateTimingEvent());
        CudaDriver.Record(_events[_used], 0);
        return _used++;
    }

    /// <inheritdoc/>
    public long[] Settle()
    {
        if (_anchor == 0) _anchor = CudaDriver.CreateTimingEvent();
        CudaDriver.Record(_anchor, 0);
        CudaDriver.Synchronize(_anchor);
        var before = new long[_used];
        for (int i = 0; i < _used; i++) before[i] = (long)Math.Round(CudaDriver.ElapsedMilliseconds(_events[i], _anchor) * 1e6);
        _used = 0;
        return before;
    }

    /// <summary>Destroys the events.</summary>
    public void Dispose()
    {
        CudaDriver.Destroy([], [.. _events, _anchor]);
        _events.Clear();
        _anchor = 0;
    }
}

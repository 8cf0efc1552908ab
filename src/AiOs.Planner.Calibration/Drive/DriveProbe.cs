using System.Diagnostics;
using AiOs.Planner.IO;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Drive;

/// <summary>One throughput measurement: the settings, the bytes moved and the wall time they took.</summary>
public sealed record ProbeResult(AioSettings Settings, IoDirection Direction, Bytes Moved, TimeSpan Elapsed)
{
    /// <summary>Bytes moved per second of wall time.</summary>
    public Bandwidth Rate => new(Moved.Value / Math.Max(Elapsed.TotalSeconds, 1e-9));
}

/// <summary>
/// Measures sequential throughput of a test file with given aio settings. Each measurement continues where
/// the previous one stopped (wrapping at the end), so consecutive reads do not hit data the drive or a
/// host cache has just served. Requests of at least 16 MiB are kept two to four deep, each in its own slot
/// of the buffer, so every I/O thread always has its next blocks queued and the device queue never drains
/// between requests. Every 4 KiB page written carries its file offset and a fresh sequence number
/// (<see cref="PageStamp"/>).
/// </summary>
public sealed class DriveProbe : IDisposable
{
    private static readonly Bytes MinChunk = Bytes.FromMiB(16);
    /// <summary>Buffer memory for all slots together: four slots of small requests, at least two of large ones.</summary>
    private static readonly Bytes SlotBudget = Bytes.FromMiB(512);
    private readonly DirectFile _file;
    private readonly Bytes _fileSize;
    private readonly Func<TimeSpan> _now;
    private AlignedBuffer? _buffer;
    private long _cursor;
    private long _sequence;

    /// <summary>Probes the first <paramref name="fileSize"/> bytes of <paramref name="file"/>; <paramref name="clock"/> gives elapsed time (a Stopwatch by default).</summary>
    public DriveProbe(DirectFile file, Bytes fileSize, Func<TimeSpan>? clock = null)
    {
        _file = file;
        _fileSize = fileSize;
        var sw = Stopwatch.StartNew();
        _now = clock ?? (() => sw.Elapsed);
    }

    /// <summary>Bytes of one request: a full queue on every thread, at least 16 MiB, a whole number of blocks per thread.</summary>
    public static Bytes ChunkFor(AioSettings s)
    {
        long perThread = s.BlockSize.Value * s.QueueDepth;
        long min = (MinChunk.Value + s.IntraOpParallelism - 1) / s.IntraOpParallelism;
        perThread = Math.Max(perThread, (min + s.BlockSize.Value - 1) / s.BlockSize.Value * s.BlockSize.Value);
        return new Bytes(perThread * s.IntraOpParallelism);
    }

    /// <summary>Requests kept in flight at once, each in its own buffer slot: 4, or fewer (at least 2) for very large requests.</summary>
    public static int SlotsFor(Bytes chunk) => (int)Math.Clamp(SlotBudget.Value / Math.Max(1, chunk.Value), 2, 4);

    /// <summary>Moves data sequentially for about <paramref name="duration"/> (at least <paramref name="minBytes"/>) and returns the rate.</summary>
    public async Task<ProbeResult> MeasureAsync(AioSettings settings, IoDirection direction, TimeSpan duration, Bytes minBytes, CancellationToken ct)
    {
        var chunk = ChunkFor(settings);
        if (chunk > _fileSize) throw new ArgumentException($"A request of {chunk} does not fit the {_fileSize} test file.");
        PrepareBuffer(chunk);
        using var engine = new AsyncIoEngine(settings);
        var start = _now();
        IEnumerable<(long Offset, long Length)> Requests()
        {
            long submitted = 0;
            while (_now() - start < duration || submitted < minBytes.Value)
            {
                if (_cursor + chunk.Value > _fileSize.Value) _cursor = 0;
                yield return (_cursor, chunk.Value);
                _cursor += chunk.Value;
                submitted += chunk.Value;
            }
        }
        long moved = await StreamAsync(engine, direction, chunk, Requests(), ct).ConfigureAwait(false);
        return new ProbeResult(settings, direction, new Bytes(moved), _now() - start);
    }

    /// <summary>Moves exactly the bytes <paramref name="offset"/>..+<paramref name="length"/> once, sequentially (for comparisons with fio on the same region).</summary>
    public async Task<ProbeResult> MeasureRegionAsync(AioSettings settings, IoDirection direction, Bytes offset, Bytes length, CancellationToken ct)
    {
        var chunk = ChunkFor(settings);
        PrepareBuffer(chunk);
        using var engine = new AsyncIoEngine(settings);
        var start = _now();
        long moved = await StreamAsync(engine, direction, chunk, Split(offset.Value, length.Value, chunk.Value), ct).ConfigureAwait(false);
        return new ProbeResult(settings, direction, new Bytes(moved), _now() - start);
    }

    /// <summary>Writes the whole test file once, sequentially, reporting each segment's rate: the data for cache detection.</summary>
    public async Task<IReadOnlyList<ProbeResult>> LayOutAsync(AioSettings settings, int segments, IProgress<Bytes>? progress, CancellationToken ct)
    {
        var results = new List<ProbeResult>();
        var chunk = ChunkFor(settings);
        PrepareBuffer(chunk);
        using var engine = new AsyncIoEngine(settings);
        long usable = _fileSize.Value / chunk.Value * chunk.Value;
        long segment = Math.Max(chunk.Value, _fileSize.Value / segments / chunk.Value * chunk.Value);
        for (long offset = 0; offset < usable; offset += segment)
        {
            long end = Math.Min(offset + segment, usable);
            var start = _now();
            long moved = await StreamAsync(engine, IoDirection.Write, chunk, Split(offset, end - offset, chunk.Value), ct).ConfigureAwait(false);
            results.Add(new ProbeResult(settings, IoDirection.Write, new Bytes(moved), _now() - start));
            progress?.Report(new Bytes(end));
        }
        return results;
    }

    private static IEnumerable<(long Offset, long Length)> Split(long offset, long length, long chunk)
    {
        for (long o = 0; o < length; o += chunk) yield return (offset + o, Math.Min(chunk, length - o));
    }

    /// <summary>
    /// Submits the requests, each into the next buffer slot, keeping as many in flight as there are slots.
    /// A slot is reused only after the request that last used it has completed (FIFO), so stamping it
    /// for the next write never touches memory the kernel is still writing from.
    /// </summary>
    private async Task<long> StreamAsync(AsyncIoEngine engine, IoDirection direction, Bytes chunk, IEnumerable<(long Offset, long Length)> requests, CancellationToken ct)
    {
        int slots = SlotsFor(chunk);
        var buffer = _buffer!;
        var inFlight = new Queue<Task<long>>();
        long moved = 0;
        int k = 0;
        try
        {
            foreach (var (offset, length) in requests)
            {
                if (inFlight.Count == slots) moved += await inFlight.Dequeue().ConfigureAwait(false);
                long at = k++ % slots * chunk.Value;
                if (direction == IoDirection.Write) PageStamp.Write(buffer.AsSpan(at, checked((int)length)), offset, ++_sequence);
                inFlight.Enqueue(direction == IoDirection.Read
                    ? engine.ReadAsync(_file, buffer, at, length, offset, ct)
                    : engine.WriteAsync(_file, buffer, at, length, offset, ct));
            }
            while (inFlight.Count > 0) moved += await inFlight.Dequeue().ConfigureAwait(false);
        }
        finally
        {
            await DrainAsync(inFlight).ConfigureAwait(false);
        }
        return moved;
    }

    /// <summary>Waits for every request, ignoring their failures (already reported), so no request outlives its buffer.</summary>
    private static async Task DrainAsync(IEnumerable<Task<long>> tasks)
    {
        foreach (var t in tasks)
        {
            try { await t.ConfigureAwait(false); }
            catch (Exception e) when (e is OperationCanceledException or IOException) { }
        }
    }

    /// <summary>Makes sure the buffer holds every slot for requests of <paramref name="chunk"/> bytes.</summary>
    private void PrepareBuffer(Bytes chunk)
    {
        long size = chunk.Value * SlotsFor(chunk);
        if (_buffer is not null && _buffer.Length >= size) return;
        _buffer?.Dispose();
        _buffer = new AlignedBuffer(new Bytes(size));
        // Random bytes under the stamps, so compression gains nothing either.
        var rng = new Random(12345);
        for (long o = 0; o < size; o += int.MaxValue / 2)
            rng.NextBytes(_buffer.AsSpan(o, (int)Math.Min(int.MaxValue / 2, size - o)));
    }

    public void Dispose() => _buffer?.Dispose();
}

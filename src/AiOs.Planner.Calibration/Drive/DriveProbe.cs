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
/// host cache has just served. Requests of at least 16 MiB are kept four deep so every I/O thread always
/// has its next blocks queued and the device queue never drains between requests.
/// </summary>
public sealed class DriveProbe : IDisposable
{
    private const int Outstanding = 4;
    private static readonly Bytes MinChunk = Bytes.FromMiB(16);
    private readonly DirectFile _file;
    private readonly Bytes _fileSize;
    private readonly Func<TimeSpan> _now;
    private AlignedBuffer? _buffer;
    private long _cursor;

    /// <summary>Probes the first <paramref name="fileSize"/> bytes of <paramref name="file"/>; <paramref name="clock"/> gives elapsed time (a Stopwatch by default).</summary>
    public DriveProbe(DirectFile file, Bytes fileSize, Func<TimeSpan>? clock = null)
    {
        _file = file;
        _fileSize = fileSize;
        var sw = Stopwatch.StartNew();
        _now = clock ?? (() => sw.Elapsed);
    }

    /// <summary>Bytes of one request: a full queue on every thread, at least 8 MiB, a whole number of blocks per thread.</summary>
    public static Bytes ChunkFor(AioSettings s)
    {
        long perThread = s.BlockSize.Value * s.QueueDepth;
        long min = (MinChunk.Value + s.IntraOpParallelism - 1) / s.IntraOpParallelism;
        perThread = Math.Max(perThread, (min + s.BlockSize.Value - 1) / s.BlockSize.Value * s.BlockSize.Value);
        return new Bytes(perThread * s.IntraOpParallelism);
    }

    /// <summary>Moves data sequentially for about <paramref name="duration"/> (at least <paramref name="minBytes"/>) and returns the rate.</summary>
    public async Task<ProbeResult> MeasureAsync(AioSettings settings, IoDirection direction, TimeSpan duration, Bytes minBytes, CancellationToken ct)
    {
        var chunk = ChunkFor(settings);
        if (chunk > _fileSize) throw new ArgumentException($"A request of {chunk} does not fit the {_fileSize} test file.");
        var buffer = BufferOf(chunk);
        using var engine = new AsyncIoEngine(settings);
        var inFlight = new Queue<Task<long>>();
        long moved = 0, submitted = 0;
        var start = _now();
        try
        {
            while (true)
            {
                bool more = _now() - start < duration || submitted < minBytes.Value;
                while (more && inFlight.Count < Outstanding)
                {
                    if (_cursor + chunk.Value > _fileSize.Value) _cursor = 0;
                    inFlight.Enqueue(direction == IoDirection.Read
                        ? engine.ReadAsync(_file, buffer, 0, chunk.Value, _cursor, ct)
                        : engine.WriteAsync(_file, buffer, 0, chunk.Value, _cursor, ct));
                    _cursor += chunk.Value;
                    submitted += chunk.Value;
                }
                if (inFlight.Count == 0) break;
                moved += await inFlight.Dequeue().ConfigureAwait(false);
            }
        }
        finally
        {
            await DrainAsync(inFlight).ConfigureAwait(false);
        }
        return new ProbeResult(settings, direction, new Bytes(moved), _now() - start);
    }

    /// <summary>Writes the whole test file once, sequentially, reporting each segment's rate: the data for cache detection.</summary>
    public async Task<IReadOnlyList<ProbeResult>> LayOutAsync(AioSettings settings, int segments, IProgress<Bytes>? progress, CancellationToken ct)
    {
        var results = new List<ProbeResult>();
        var chunk = ChunkFor(settings);
        var buffer = BufferOf(chunk);
        using var engine = new AsyncIoEngine(settings);
        long segment = Math.Max(chunk.Value, _fileSize.Value / segments / chunk.Value * chunk.Value);
        for (long offset = 0; offset + chunk.Value <= _fileSize.Value; offset += segment)
        {
            long end = Math.Min(offset + segment, _fileSize.Value / chunk.Value * chunk.Value);
            var start = _now();
            var tasks = new List<Task<long>>();
            long moved;
            try
            {
                for (long o = offset; o < end; o += chunk.Value)
                {
                    tasks.Add(engine.WriteAsync(_file, buffer, 0, chunk.Value, o, ct));
                    if (tasks.Count >= Outstanding) await tasks[^Outstanding].ConfigureAwait(false);
                }
                moved = (await Task.WhenAll(tasks).ConfigureAwait(false)).Sum();
            }
            finally
            {
                await DrainAsync(tasks).ConfigureAwait(false);
            }
            results.Add(new ProbeResult(settings, IoDirection.Write, new Bytes(moved), _now() - start));
            progress?.Report(new Bytes(end));
        }
        return results;
    }

    /// <summary>Moves exactly the bytes <paramref name="offset"/>..+<paramref name="length"/> once, sequentially (for comparisons with fio on the same region).</summary>
    public async Task<ProbeResult> MeasureRegionAsync(AioSettings settings, IoDirection direction, Bytes offset, Bytes length, CancellationToken ct)
    {
        var chunk = ChunkFor(settings);
        var buffer = BufferOf(chunk);
        using var engine = new AsyncIoEngine(settings);
        var inFlight = new Queue<Task<long>>();
        long moved = 0;
        var start = _now();
        try
        {
            for (long o = 0; o < length.Value; o += chunk.Value)
            {
                long n = Math.Min(chunk.Value, length.Value - o);
                inFlight.Enqueue(direction == IoDirection.Read
                    ? engine.ReadAsync(_file, buffer, 0, n, offset.Value + o, ct)
                    : engine.WriteAsync(_file, buffer, 0, n, offset.Value + o, ct));
                if (inFlight.Count >= Outstanding) moved += await inFlight.Dequeue().ConfigureAwait(false);
            }
            while (inFlight.Count > 0) moved += await inFlight.Dequeue().ConfigureAwait(false);
        }
        finally
        {
            await DrainAsync(inFlight).ConfigureAwait(false);
        }
        return new ProbeResult(settings, direction, new Bytes(moved), _now() - start);
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

    private AlignedBuffer BufferOf(Bytes size)
    {
        if (_buffer is not null && _buffer.Length >= size.Value) return _buffer;
        _buffer?.Dispose();
        _buffer = new AlignedBuffer(size);
        // Random bytes, so a drive or host that compresses or deduplicates cannot shortcut writes.
        new Random(12345).NextBytes(_buffer.AsSpan(0, (int)Math.Min(size.Value, int.MaxValue)));
        return _buffer;
    }

    public void Dispose() => _buffer?.Dispose();
}

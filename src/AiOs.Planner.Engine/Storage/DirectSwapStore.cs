using System.Collections.Concurrent;
using AiOs.Planner.IO;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Storage;

/// <summary>
/// An <see cref="ISwapStore"/> over the direct-I/O library: one O_DIRECT file per key, so swap traffic goes
/// to the drive and not the page cache, as the calibrated profile assumes. A request is cut into aio-block
/// pieces (widened to 4 KiB boundaries at its two ends) that run in parallel, up to the aio settings' queue
/// depth × threads in flight (<see cref="ParallelPieces"/>, which calibration's swap probe uses too). A piece whose caller memory is 4096-byte aligned (the engine's staging and
/// optimizer buffers are) moves straight between that memory and the drive; any other piece goes through an
/// aligned bounce buffer of one block, so the extra memory is bounded by the bytes in flight. A piece that a write covers only partly is
/// read first (read-modify-write), which is safe because the engine never writes one key from two threads
/// at once. Where O_DIRECT is refused (tmpfs), files fall back to buffered I/O and <see cref="Warning"/> says so.
/// </summary>
public sealed unsafe class DirectSwapStore : ISwapStore
{
    private const long Block = AlignedBuffer.Alignment;
    private readonly SwapDirectory _directory;
    private readonly ConcurrentDictionary<string, DirectFile> _files = new(StringComparer.Ordinal);
    private readonly ParallelPieces _pieces;

    /// <summary>Stores files in <paramref name="directory"/> (the store does not own it), cutting requests as <paramref name="aio"/> says.</summary>
    public DirectSwapStore(SwapDirectory directory, AioSettings? aio = null)
    {
        _directory = directory;
        _pieces = new ParallelPieces(aio);
    }

    /// <summary>The first fallback warning, or null while every file uses O_DIRECT.</summary>
    public string? Warning => _files.Values.Select(f => f.FallbackWarning).FirstOrDefault(w => w is not null);

    /// <inheritdoc/>
    public void Write(string key, long offset, ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) return;
        DirectFile file = File(key);
        long first = offset, last = offset + data.Length;
        try
        {
            fixed (byte* source = data)
            {
                nint src = (nint)source;
                _pieces.ForEach(first, last, (buffer, at, n) =>
                {
                    // The bytes of [at, at + n) that the request covers.
                    long from = Math.Max(at, first), to = Math.Min(at + n, last);
                    // A whole piece whose source is aligned goes to the drive straight from the caller's memory.
                    if (from == at && to == at + n && (src + (at - first)) % Block == 0)
                    {
                        using var direct = AlignedBuffer.Wrap(src + (nint)(at - first), new Bytes(n));
                        return file.Write(direct, 0, n, at);
                    }
                    Span<byte> span = buffer.AsSpan(0, (int)n);
                    if (from != at || to != at + n)
                    {
                        long got = file.Read(buffer, 0, n, at);
                        span[(int)got..].Clear();
                    }
                    new ReadOnlySpan<byte>((byte*)src + (from - first), (int)(to - from)).CopyTo(span[(int)(from - at)..]);
                    file.Write(buffer, 0, n, at);
                    return n;
                });
            }
        }
        catch (DirectIoException e) when (e.Message.Contains("space", StringComparison.OrdinalIgnoreCase))
        {
            throw new IOException($"The NVMe swap folder '{_directory.Path}' is full: writing {data.Length} bytes of '{key}' failed ({e.Message}).", e);
        }
    }

    /// <inheritdoc/>
    public void Read(string key, long offset, Span<byte> destination)
    {
        if (destination.IsEmpty) return;
        DirectFile file = File(key);
        long first = offset, last = offset + destination.Length;
        long end;
        fixed (byte* target = destination)
        {
            nint dst = (nint)target;
            end = _pieces.ForEach(first, last, (buffer, at, n) =>
            {
                // A whole piece whose destination is aligned is read straight into the caller's memory.
                if (at >= first && at + n <= last && (dst + (at - first)) % Block == 0)
                {
                    using var direct = AlignedBuffer.Wrap(dst + (nint)(at - first), new Bytes(n));
                    return file.Read(direct, 0, n, at);
                }
                long got = file.Read(buffer, 0, n, at);
                long from = Math.Max(at, first), to = Math.Min(Math.Min(at + n, last), at + got);
                if (to > from) buffer.AsSpan(from - at, (int)(to - from)).CopyTo(new Span<byte>((byte*)dst + (from - first), (int)(to - from)));
                return got;
            });
        }
        if (end < last)
            throw new EndOfStreamException($"Swap file '{key}' ends at {end} bytes; {last} were expected.");
    }

    private DirectFile File(string key) => _files.GetOrAdd(key, k => DirectFile.Open(_directory.FileFor(k), DirectFileMode.ReadWrite));

    /// <summary>Closes every file and frees the bounce buffers.</summary>
    public void Dispose()
    {
        foreach (DirectFile f in _files.Values) f.Dispose();
        _files.Clear();
        _pieces.Dispose();
    }
}

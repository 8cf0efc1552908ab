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
/// With <see cref="Checksums"/> on, pieces lie on a fixed grid of each file (multiples of the aio block) and each
/// piece is hashed on its own I/O thread as it is written and verified as it is read; a request that covers a
/// piece only partly reads and verifies the whole piece (so the sum always covers what is on the drive).
/// </summary>
public sealed unsafe class DirectSwapStore : ISwapStore
{
    private const long Block = AlignedBuffer.Alignment;
    private readonly SwapDirectory _directory;
    private readonly ConcurrentDictionary<string, DirectFile> _files = new(StringComparer.Ordinal);
    private readonly ParallelPieces _pieces;

    /// <summary>Stores files in <paramref name="directory"/> (the store does not own it), cutting requests as <paramref name="aio"/> says; <paramref name="checksums"/> checks every piece read against what was written.</summary>
    public DirectSwapStore(SwapDirectory directory, AioSettings? aio = null, bool checksums = true)
    {
        _directory = directory;
        _pieces = new ParallelPieces(aio);
        Checksums = checksums ? new SwapChecksums(_pieces.PieceBytes) : null;
    }

    /// <summary>The first fallback warning, or null while every file uses O_DIRECT.</summary>
    public string? Warning => _files.Values.Select(f => f.FallbackWarning).FirstOrDefault(w => w is not null);

    /// <summary>The sums of the pieces written so far; null when checksums are off.</summary>
    public SwapChecksums? Checksums { get; }

    /// <inheritdoc/>
    public void Write(string key, long offset, ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) return;
        DirectFile file = File(key);
        SwapChecksums? sums = Checksums;
        string path = _directory.FileFor(key);
        long first = offset, last = offset + data.Length;
        try
        {
            fixed (byte* source = data)
            {
                nint src = (nint)source;
                _pieces.ForEach(Origin(first), last, (buffer, at, n) =>
                {
                    long piece = at / _pieces.PieceBytes;
                    // The bytes of [at, at + n) that the request covers, and how far the piece already reaches on the drive.
                    long from = Math.Max(at, first), to = Math.Min(at + n, last);
                    long extent = Math.Max(n, sums?.Extent(key, piece) ?? 0);
                    // A whole piece whose source is aligned goes to the drive straight from the caller's memory.
                    if (from == at && to == at + extent && (src + (at - first)) % Block == 0)
                    {
                        using var direct = AlignedBuffer.Wrap(src + (nint)(at - first), new Bytes(n));
                        sums?.Record(key, piece, direct.AsSpan(0, (int)n));
                        return file.Write(direct, 0, n, at);
                    }
                    Span<byte> span = buffer.AsSpan(0, (int)extent);
                    if (from != at || to != at + extent)
                    {
                        long got = file.Read(buffer, 0, extent, at);
                        sums?.Verify(key, path, piece, span[..(int)got]);
                        span[(int)got..].Clear();
                    }
                    new ReadOnlySpan<byte>((byte*)src + (from - first), (int)(to - from)).CopyTo(span[(int)(from - at)..]);
                    sums?.Record(key, piece, span);
                    file.Write(buffer, 0, extent, at);
                    return n;
                });
            }
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            // What a failed write left in its pieces is unknown; a later read must not be checked against sums of bytes that never arrived.
            sums?.Forget(key, sums.PieceOf(first), sums.PieceOf(last - 1));
            if (e is DiskFullException)
                throw new IOException($"The NVMe swap folder '{_directory.Path}' is full (disk full): writing {data.Length} bytes of '{path}' failed ({e.Message}).", e);
            throw;
        }
    }

    /// <inheritdoc/>
    public void Read(string key, long offset, Span<byte> destination)
    {
        if (destination.IsEmpty) return;
        DirectFile file = File(key);
        SwapChecksums? sums = Checksums;
        string path = _directory.FileFor(key);
        long first = offset, last = offset + destination.Length;
        long end;
        fixed (byte* target = destination)
        {
            nint dst = (nint)target;
            end = _pieces.ForEach(Origin(first), last, (buffer, at, n) =>
            {
                long piece = at / _pieces.PieceBytes;
                // A written piece is read as far as it was written, so its whole sum can be checked.
                long extent = Math.Max(n, sums?.Extent(key, piece) ?? 0);
                // A whole piece whose destination is aligned is read straight into the caller's memory.
                if (at >= first && at + extent <= last && (dst + (at - first)) % Block == 0)
                {
                    using var direct = AlignedBuffer.Wrap(dst + (nint)(at - first), new Bytes(extent));
                    long read = file.Read(direct, 0, extent, at);
                    sums?.Verify(key, path, piece, direct.AsSpan(0, (int)read));
                    return Math.Min(read, n);
                }
                long got = file.Read(buffer, 0, extent, at);
                sums?.Verify(key, path, piece, buffer.AsSpan(0, (int)got));
                long from = Math.Max(at, first), to = Math.Min(Math.Min(at + n, last), at + got);
                if (to > from) buffer.AsSpan(from - at, (int)(to - from)).CopyTo(new Span<byte>((byte*)dst + (from - first), (int)(to - from)));
                return Math.Min(got, n);
            });
        }
        if (end < last)
            throw new EndOfStreamException($"Swap file '{key}' ({path}) ends at {end} bytes; {last} were expected.");
    }

    /// <summary>Where a request's pieces start: with checksums, on the piece grid, so each piece has one sum whatever the request.</summary>
    private long Origin(long first) => Checksums is null ? first : first / _pieces.PieceBytes * _pieces.PieceBytes;

    private DirectFile File(string key) => _files.GetOrAdd(key, k => DirectFile.Open(_directory.FileFor(k), DirectFileMode.CreateNew));

    /// <summary>Closes every file and frees the bounce buffers.</summary>
    public void Dispose()
    {
        foreach (DirectFile f in _files.Values) f.Dispose();
        _files.Clear();
        _pieces.Dispose();
    }
}

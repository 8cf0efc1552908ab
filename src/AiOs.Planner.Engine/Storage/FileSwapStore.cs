using System.Collections.Concurrent;
using Microsoft.Win32.SafeHandles;

namespace AiOs.Planner.Engine.Storage;

/// <summary>
/// An <see cref="ISwapStore"/> with one ordinary (page-cached) file per key in a <see cref="SwapDirectory"/>,
/// written and read with positional I/O so concurrent calls need no shared file position. With
/// <see cref="Checksums"/> on, each piece of <see cref="DefaultPieceBytes"/> is hashed as it is written and verified
/// as it is read; a request that covers a piece only partly reads the rest of that piece to check or re-hash it.
/// </summary>
public sealed class FileSwapStore : ISwapStore
{
    /// <summary>Bytes per checksummed piece by default: DeepSpeed's (and the direct store's) default aio block, 1 MiB.</summary>
    public const long DefaultPieceBytes = 1 << 20;

    private readonly SwapDirectory _directory;
    private readonly ConcurrentDictionary<string, SafeFileHandle> _handles = new(StringComparer.Ordinal);

    /// <summary>
    /// Piece-sized arrays for pieces a request covers only partly, reused (<see cref="ReusedArrays"/>): the shared array pool
    /// kept a 1 MiB array per thread that returned one, host memory an NVMe run's plan does not count.
    /// </summary>
    private readonly ReusedArrays _pieceArrays = new();

    /// <summary>Stores files in <paramref name="directory"/> (the store does not own it); <paramref name="checksums"/> checks every piece of <paramref name="pieceBytes"/> read against what was written.</summary>
    public FileSwapStore(SwapDirectory directory, bool checksums = true, long pieceBytes = DefaultPieceBytes)
    {
        _directory = directory;
        Checksums = checksums ? new SwapChecksums(pieceBytes) : null;
    }

    /// <summary>The sums of the pieces written so far; null when checksums are off.</summary>
    public SwapChecksums? Checksums { get; }

    /// <inheritdoc/>
    public void Write(string key, long offset, ReadOnlySpan<byte> data)
    {
        SafeFileHandle handle = Handle(key);
        SwapChecksums? sums = Checksums;
        string path = _directory.FileFor(key);
        try
        {
            // The sums are taken before the write, while the bytes a partial piece keeps are still the old ones to verify.
            List<(long Piece, PieceSum Sum)>? pending = sums is null || data.IsEmpty ? null : Sums(sums, key, path, handle, offset, data);
            RandomAccess.Write(handle, data, offset);
            if (pending is not null)
                foreach (var (piece, sum) in pending) sums!.Set(key, piece, sum);
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            if (sums is not null && !data.IsEmpty) sums.Forget(key, sums.PieceOf(offset), sums.PieceOf(offset + data.Length - 1));
            if (e is IOException io && Descriptions.AtomicFile.IsDiskFull(io))
                throw new IOException($"The NVMe swap folder '{_directory.Path}' is full (disk full): writing {data.Length} bytes of '{path}' failed.", e);
            throw;
        }
    }

    /// <inheritdoc/>
    public void Read(string key, long offset, Span<byte> destination)
    {
        SafeFileHandle handle = Handle(key);
        string path = _directory.FileFor(key);
        if (Checksums is not { } sums)
        {
            int done = ReadFully(handle, destination, offset);
            if (done < destination.Length) throw EndOf(key, path, offset + done, destination.Length - done);
            return;
        }
        long first = offset, last = offset + destination.Length, size = sums.PieceBytes;
        for (long piece = sums.PieceOf(first); first < last && piece <= sums.PieceOf(last - 1); piece++)
        {
            long start = piece * size, from = Math.Max(start, first), to = Math.Min(start + size, last);
            long extent = Math.Max(to - start, sums.Extent(key, piece));
            if (from == start && start + extent <= last)
            {
                // The whole written piece lies in the caller's memory: read and check it there.
                Span<byte> span = destination.Slice((int)(start - first), (int)extent);
                int got = ReadFully(handle, span, start);
                sums.Verify(key, path, piece, span[..got]);
                if (start + got < to) throw EndOf(key, path, start + got, last - start - got);
                continue;
            }
            byte[] rented = RentPiece(sums);
            try
            {
                int got = ReadFully(handle, rented.AsSpan(0, (int)extent), start);
                sums.Verify(key, path, piece, rented.AsSpan(0, got));
                if (start + got < to) throw EndOf(key, path, start + got, last - start - got);
                rented.AsSpan((int)(from - start), (int)(to - from)).CopyTo(destination[(int)(from - first)..]);
            }
            finally
            {
                _pieceArrays.Return(rented);
            }
        }
    }

    /// <summary>The sums <paramref name="data"/> at <paramref name="offset"/> gives each piece it touches; pieces it covers only partly are read, verified and merged.</summary>
    private List<(long, PieceSum)> Sums(SwapChecksums sums, string key, string path, SafeFileHandle handle, long offset, ReadOnlySpan<byte> data)
    {
        var pending = new List<(long, PieceSum)>();
        long first = offset, last = offset + data.Length, size = sums.PieceBytes;
        for (long piece = sums.PieceOf(first); piece <= sums.PieceOf(last - 1); piece++)
        {
            long start = piece * size, from = Math.Max(start, first), to = Math.Min(start + size, last);
            long extent = Math.Max(to - start, sums.Extent(key, piece));
            ReadOnlySpan<byte> mine = data.Slice((int)(from - first), (int)(to - from));
            if (from == start && to - start == extent)
            {
                pending.Add((piece, new PieceSum(SwapChecksums.Hash(mine), extent)));
                continue;
            }
            byte[] rented = RentPiece(sums);
            try
            {
                Span<byte> merged = rented.AsSpan(0, (int)extent);
                int got = ReadFully(handle, merged, start);
                sums.Verify(key, path, piece, merged[..got]);
                merged[got..].Clear(); // bytes past the end read back as zeros once the write extends the file
                mine.CopyTo(merged[(int)(from - start)..]);
                pending.Add((piece, new PieceSum(SwapChecksums.Hash(merged), extent)));
            }
            finally
            {
                _pieceArrays.Return(rented);
            }
        }
        return pending;
    }

    /// <summary>An array of one piece (a piece's written extent never passes it).</summary>
    private byte[] RentPiece(SwapChecksums sums) => _pieceArrays.Rent((int)sums.PieceBytes);

    /// <summary>Reads until <paramref name="destination"/> is full or the file ends; returns the bytes read.</summary>
    private static int ReadFully(SafeFileHandle handle, Span<byte> destination, long offset)
    {
        int done = 0;
        while (done < destination.Length)
        {
            int n = RandomAccess.Read(handle, destination[done..], offset + done);
            if (n == 0) break;
            done += n;
        }
        return done;
    }

    private static EndOfStreamException EndOf(string key, string path, long end, long missing) =>
        new($"Swap file '{key}' ({path}) ends at {end} bytes; {missing} more were expected.");

    private SafeFileHandle Handle(string key) =>
        _handles.GetOrAdd(key, k => File.OpenHandle(_directory.FileFor(k), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read));

    /// <summary>Closes every file (the directory decides whether they are kept).</summary>
    public void Dispose()
    {
        foreach (SafeFileHandle h in _handles.Values) h.Dispose();
        _handles.Clear();
    }
}

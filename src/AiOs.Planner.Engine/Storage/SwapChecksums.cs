using System.Collections.Concurrent;
using System.IO.Hashing;

namespace AiOs.Planner.Engine.Storage;

/// <summary>The checksum of one swap piece: XxHash3 (64-bit) of its first <see cref="Length"/> bytes as last written.</summary>
internal readonly record struct PieceSum(ulong Hash, long Length);

/// <summary>
/// In-memory checksums of a store's swap files, one per key and per piece: piece <c>i</c> is the byte range
/// [i × <see cref="PieceBytes"/>, …) of the key's file, up to the furthest byte written into it. A store hashes a
/// piece as it writes it and verifies it whenever it reads it (also before merging a partial write into it), so a
/// piece changed on the drive, cut short or lost is an <see cref="InvalidDataException"/> naming the file and the
/// piece instead of silently different values. Swap data lives for one run, so the sums never go to disk.
/// XxHash3 is the fastest non-cryptographic hash in System.IO.Hashing (tens of GB/s per core), so the cost is small
/// beside the drive; <c>--no-swap-checksums</c> turns it off.
/// </summary>
public sealed class SwapChecksums
{
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<long, PieceSum>> _keys = new(StringComparer.Ordinal);

    /// <summary>Checksums over pieces of <paramref name="pieceBytes"/> bytes.</summary>
    public SwapChecksums(long pieceBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pieceBytes, 1);
        PieceBytes = pieceBytes;
    }

    /// <summary>Bytes per checksummed piece (the direct store's aio block, so each I/O piece hashes itself on its own thread).</summary>
    public long PieceBytes { get; }

    /// <summary>The 64-bit hash the store uses.</summary>
    public static ulong Hash(ReadOnlySpan<byte> bytes) => XxHash3.HashToUInt64(bytes);

    /// <summary>The index of the piece holding byte <paramref name="offset"/>.</summary>
    public long PieceOf(long offset) => offset / PieceBytes;

    /// <summary>The recorded sum of <paramref name="piece"/> of <paramref name="key"/>, if it was written.</summary>
    internal PieceSum? Find(string key, long piece) =>
        _keys.TryGetValue(key, out var pieces) && pieces.TryGetValue(piece, out PieceSum sum) ? sum : null;

    /// <summary>The furthest byte written into <paramref name="piece"/>, relative to its start; 0 if none.</summary>
    internal long Extent(string key, long piece) => Find(key, piece)?.Length ?? 0;

    /// <summary>Records <paramref name="bytes"/> (from the piece's start) as the content of <paramref name="piece"/>.</summary>
    internal void Record(string key, long piece, ReadOnlySpan<byte> bytes) =>
        _keys.GetOrAdd(key, _ => new ConcurrentDictionary<long, PieceSum>())[piece] = new PieceSum(Hash(bytes), bytes.Length);

    /// <summary>Records a sum taken before the piece was written (a store that must hash before it overwrites).</summary>
    internal void Set(string key, long piece, PieceSum sum) => _keys.GetOrAdd(key, _ => new ConcurrentDictionary<long, PieceSum>())[piece] = sum;

    /// <summary>Forgets pieces <paramref name="first"/>..<paramref name="last"/> of a key after a failed write left their content unknown.</summary>
    internal void Forget(string key, long first, long last)
    {
        if (!_keys.TryGetValue(key, out var pieces)) return;
        for (long i = first; i <= last; i++) pieces.TryRemove(i, out _);
    }

    /// <summary>
    /// Checks <paramref name="read"/> (the bytes read from the piece's start; fewer than written when the file is
    /// shorter) against the recorded sum of <paramref name="piece"/>; nothing to check for a piece never written.
    /// </summary>
    /// <exception cref="InvalidDataException">The piece is shorter than written or its bytes differ.</exception>
    internal void Verify(string key, string path, long piece, ReadOnlySpan<byte> read)
    {
        if (Find(key, piece) is not { } sum) return;
        long start = piece * PieceBytes;
        if (read.Length < sum.Length)
            throw new InvalidDataException($"Swap file '{path}' piece {piece} (bytes {start}–{start + sum.Length}) is cut short: the file ends at byte {start + read.Length}, " +
                $"but {sum.Length} bytes were written there in this run. Something truncated or replaced the swap file; check the drive and that nothing else writes to the swap folder. {Advice}");
        ulong hash = Hash(read[..(int)sum.Length]);
        if (hash != sum.Hash)
            throw new InvalidDataException($"Swap file '{path}' piece {piece} (bytes {start}–{start + sum.Length}) does not match the checksum written with it " +
                $"(xxh3 {sum.Hash:x16} written, {hash:x16} read back): the data changed on the drive or on its way back. {Advice}");
    }

    private const string Advice = "Check the drive (dmesg, smartctl) and rerun; --no-swap-checksums skips this check.";
}

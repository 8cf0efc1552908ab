using System.Diagnostics;
using System.IO.Hashing;
using AiOs.Planner.Engine.Storage;
using Xunit.Abstractions;

namespace AiOs.Planner.Engine.Tests;

/// <summary>The hashing cost of swap checksums, printed for the docs (a figure, never a timed assertion).</summary>
public sealed class SwapChecksumCostTests(ITestOutputHelper output)
{
    [Fact]
    public void Given_256MiBIn1MiBPieces_When_Hashed_Then_EachPieceHasItsOwnStableSumAndTheRateIsPrinted()
    {
        // Run with `--logger "console;verbosity=detailed"` to see the GB/s; at X GB/s per core the swap stream
        // of R GB/s costs R / X of one core, spread over the I/O threads that move the pieces.
        const int piece = 1 << 20, pieces = 256;
        var data = new byte[(long)piece * pieces];
        new Random(7).NextBytes(data);
        ulong[] sums = Enumerable.Range(0, pieces).Select(i => SwapChecksums.Hash(data.AsSpan(i * piece, piece))).ToArray();

        foreach (var (name, hash) in new (string, Hasher)[]
        {
            ("xxh3 (used)", b => XxHash3.HashToUInt64(b)),
            ("xxh64", b => XxHash64.HashToUInt64(b)),
            ("crc32", b => Crc32.HashToUInt32(b)),
        })
        {
            var clock = Stopwatch.StartNew();
            ulong mix = 0;
            for (int i = 0; i < pieces; i++) mix ^= hash(data.AsSpan(i * piece, piece));
            double seconds = clock.Elapsed.TotalSeconds;
            output.WriteLine($"{name}: {data.Length / seconds / 1e9:0.0} GB/s on one core over 1 MiB pieces (mix {mix:x})");
        }

        Assert.Equal(pieces, sums.Distinct().Count());
        data[123 * piece + 4_567] ^= 1;
        Assert.NotEqual(sums[123], SwapChecksums.Hash(data.AsSpan(123 * piece, piece)));
        Assert.Equal(sums[124], SwapChecksums.Hash(data.AsSpan(124 * piece, piece)));
    }

    private delegate ulong Hasher(ReadOnlySpan<byte> bytes);
}

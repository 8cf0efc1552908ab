using AiOs.Planner.Engine.Storage;

namespace AiOs.Planner.Engine.Tests;

public sealed class DirectSwapStoreTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("aios-direct-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static byte[] Pattern(int length, int seed) => Enumerable.Range(0, length).Select(i => (byte)(i * 31 + seed)).ToArray();

    [Fact]
    public void Given_UnalignedWritesThatShareBlocks_When_ReadBack_Then_EachRangeHoldsItsBytesAndNeighboursSurvive()
    {
        using SwapDirectory dir = SwapDirectory.Acquire(_root, "d", keep: false);
        using var store = new DirectSwapStore(dir);
        byte[] a = Pattern(10_000, 1), b = Pattern(5_003, 2), c = Pattern(7, 3);

        store.Write("k", 0, a);
        store.Write("k", 10_000, b);      // starts mid-block, after a
        store.Write("k", 4_100, c);       // overwrites 7 bytes inside a
        var whole = new byte[15_003];
        store.Read("k", 0, whole);
        var middle = new byte[7];
        store.Read("k", 4_100, middle);

        byte[] expected = a.Concat(b).ToArray();
        c.CopyTo(expected, 4_100);
        Assert.Equal(expected, whole);
        Assert.Equal(c, middle);
    }

    [Fact]
    public void Given_AlignedCallerMemory_When_WrittenAndReadInWholeAndPartialPieces_Then_TheBytesRoundTripAndNeighboursSurvive()
    {
        using SwapDirectory dir = SwapDirectory.Acquire(_root, "z", keep: false);
        var aio = new Settings.AioSettings { BlockSize = Units.Bytes.FromKiB(16), QueueDepth = 4 };
        using var store = new DirectSwapStore(dir, aio);
        const int length = 100_000; // six whole 16 KiB pieces straight from the buffer, a partial tail through a bounce buffer
        using var source = new IO.AlignedBuffer(Units.Bytes.FromKiB(100));
        Pattern(length, 7).CopyTo(source.AsSpan(0, length));
        byte[] before = Pattern(4_096, 3);

        store.Write("k", length, before);                    // a neighbour right after the aligned write's tail
        store.Write("k", 0, source.AsSpan(0, length));
        using var back = new IO.AlignedBuffer(Units.Bytes.FromKiB(100));
        store.Read("k", 0, back.AsSpan(0, length));
        var neighbour = new byte[4_096];
        store.Read("k", length, neighbour);
        var unalignedStart = new byte[50_000];
        store.Read("k", 1, unalignedStart);

        Assert.True(source.AsSpan(0, length).SequenceEqual(back.AsSpan(0, length)));
        Assert.Equal(before, neighbour);
        Assert.Equal(Pattern(length, 7).AsSpan(1, 50_000).ToArray(), unalignedStart);
    }

    [Fact]
    public void Given_RequestsLargerThanTheAioBlock_When_SplitAcrossParallelPieces_Then_TheBytesRoundTrip()
    {
        using SwapDirectory dir = SwapDirectory.Acquire(_root, "p", keep: false);
        var aio = new Settings.AioSettings { BlockSize = Units.Bytes.FromKiB(8), QueueDepth = 4 };
        using var store = new DirectSwapStore(dir, aio);
        byte[] data = Pattern(100_001, 5);

        store.Write("k", 3, data);
        byte[] patch = Pattern(9_000, 9);
        store.Write("k", 20_001, patch);   // spans pieces, both ends mid-block
        var back = new byte[100_001];
        store.Read("k", 3, back);

        patch.CopyTo(data, 20_001 - 3);
        Assert.Equal(data, back);
        Assert.Throws<EndOfStreamException>(() => store.Read("k", 3, new byte[200_000]));
    }

    [Fact]
    public void Given_AShortObject_When_ReadPastItsEnd_Then_ItFailsClearly()
    {
        using SwapDirectory dir = SwapDirectory.Acquire(_root, "e", keep: false);
        using var store = new DirectSwapStore(dir);
        store.Write("k", 0, new byte[100]);

        var e = Assert.Throws<EndOfStreamException>(() => store.Read("k", 0, new byte[5000]));

        Assert.Contains("'k'", e.Message);
    }
}

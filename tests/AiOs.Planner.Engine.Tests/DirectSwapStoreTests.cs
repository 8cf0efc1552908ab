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

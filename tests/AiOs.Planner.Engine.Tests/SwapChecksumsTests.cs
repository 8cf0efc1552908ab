using AiOs.Planner.Engine.Storage;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Tests;

/// <summary>Both swap stores check each piece they read against the checksum taken when it was written.</summary>
public sealed class SwapChecksumsTests : IDisposable
{
    private const int Piece = 64 * 1024;
    private const int Length = 8 * Piece + 1_000; // eight whole pieces and a partial ninth
    private readonly string _root = Directory.CreateTempSubdirectory("aios-sums-").FullName;
    private readonly List<IDisposable> _owned = [];

    public void Dispose()
    {
        foreach (IDisposable d in Enumerable.Reverse(_owned)) d.Dispose();
        Directory.Delete(_root, recursive: true);
    }

    public static TheoryData<bool> Kinds() => new() { true, false };

    /// <summary>A store of the kind asked for (direct: O_DIRECT; else buffered), with 64 KiB pieces.</summary>
    private ISwapStore Store(bool direct, bool checksums = true, string run = "r")
    {
        SwapDirectory dir = SwapDirectory.Acquire(_root, run, keep: true);
        _owned.Add(dir);
        ISwapStore store = direct
            ? new DirectSwapStore(dir, new AioSettings { BlockSize = Bytes.FromKiB(64), QueueDepth = 4 }, checksums)
            : new FileSwapStore(dir, checksums, Piece);
        _owned.Add(store);
        return store;
    }

    private string FileOf(string key, string run = "r") => Path.Combine(_root, "aios-" + run, key);

    private static byte[] Pattern(int length, int seed) => Enumerable.Range(0, length).Select(i => (byte)(i * 31 + seed + (i >> 12))).ToArray();

    private static void Zero(string path, long offset, int count)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Write);
        f.Position = offset;
        f.Write(new byte[count]);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Given_64KiBZeroedOnDiskMidFile_When_ReadBack_Then_AnInvalidDataExceptionNamesTheFileAndThePiece(bool direct)
    {
        ISwapStore store = Store(direct);
        store.Write("param-u3", 0, Pattern(Length, 1));
        Zero(FileOf("param-u3"), 3 * Piece, Piece);

        var e = Assert.Throws<InvalidDataException>(() => store.Read("param-u3", 0, new byte[Length]));

        Assert.Contains(FileOf("param-u3"), e.Message);
        Assert.Contains("piece 3 ", e.Message);
        Assert.Contains("--no-swap-checksums", e.Message);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Given_BytesChangedInsideAPiece_When_APartOfThatPieceIsRead_Then_TheWholePieceIsCheckedAndTheReadFails(bool direct)
    {
        ISwapStore store = Store(direct);
        store.Write("k", 0, Pattern(Length, 2));
        Zero(FileOf("k"), 5 * Piece + 40_000, 100);          // 100 bytes inside piece 5, not on any 4 KiB boundary

        var e = Assert.Throws<InvalidDataException>(() => store.Read("k", 5 * Piece + 10, new byte[20])); // 20 bytes far from the damage
        var untouched = new byte[Piece];
        store.Read("k", 6 * Piece, untouched);                // a sound piece still reads

        Assert.Contains("piece 5 ", e.Message);
        Assert.Equal(Pattern(Length, 2).AsSpan(6 * Piece, Piece).ToArray(), untouched);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Given_ACorruptPiece_When_APartialWriteMergesIntoIt_Then_TheWriteFailsRatherThanBlessTheDamage(bool direct)
    {
        ISwapStore store = Store(direct);
        store.Write("k", 0, Pattern(Length, 3));
        Zero(FileOf("k"), 2 * Piece + 4096, 4096);

        var e = Assert.Throws<InvalidDataException>(() => store.Write("k", 2 * Piece + 50_000, Pattern(300, 9)));

        Assert.Contains("piece 2 ", e.Message);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Given_ATruncatedSwapFile_When_ReadBack_Then_TheErrorSaysThePieceIsCutShort(bool direct)
    {
        ISwapStore store = Store(direct);
        store.Write("k", 0, Pattern(Length, 4));
        using (var f = new FileStream(FileOf("k"), FileMode.Open, FileAccess.Write)) f.SetLength(4 * Piece + 8192);

        var e = Assert.Throws<InvalidDataException>(() => store.Read("k", 0, new byte[Length]));

        Assert.Contains(FileOf("k"), e.Message);
        Assert.Contains("cut short", e.Message);
        Assert.Matches("piece [4-8] ", e.Message);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Given_ChecksumsOff_When_ACorruptFileIsRead_Then_NoErrorAndTheDamagedBytesComeBack(bool direct)
    {
        ISwapStore store = Store(direct, checksums: false);
        byte[] data = Pattern(Length, 5);
        store.Write("k", 0, data);
        Zero(FileOf("k"), 3 * Piece, Piece);

        var back = new byte[Length];
        store.Read("k", 0, back);

        Array.Clear(data, 3 * Piece, Piece);
        Assert.Equal(data, back);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Given_APieceRewrittenWhole_When_ReadBack_Then_ItsNewChecksumHolds(bool direct)
    {
        ISwapStore store = Store(direct);
        store.Write("k", 0, Pattern(Length, 6));
        Zero(FileOf("k"), 1 * Piece, Piece);
        byte[] fresh = Pattern(Piece, 7);

        store.Write("k", Piece, fresh);
        var back = new byte[Piece];
        store.Read("k", Piece, back);

        Assert.Equal(fresh, back);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Given_ManyOverlappingUnalignedWrites_When_ReadBack_Then_EveryByteMatchesAndNoChecksumFails(bool direct)
    {
        // Seeded random writes of every shape (inside a piece, across pieces, past the end, shrinking ends) against a byte array model.
        foreach (int seed in new[] { 1, 2, 3 })
        {
            ISwapStore store = Store(direct, run: $"m{seed}");
            var random = new Random(seed);
            var model = new byte[6 * Piece];
            int end = 0;
            for (int i = 0; i < 60; i++)
            {
                int offset = random.Next(0, end + 1 < model.Length ? end + 1 : model.Length - 1);
                int length = random.Next(1, Math.Min(model.Length - offset, random.Next(2) == 0 ? 5_000 : 3 * Piece) + 1);
                byte[] data = Pattern(length, random.Next(256));
                store.Write("k", offset, data);
                data.CopyTo(model, offset);
                end = Math.Max(end, offset + length);
                int from = random.Next(0, end), count = random.Next(1, end - from + 1);
                var part = new byte[count];
                store.Read("k", from, part);
                Assert.Equal(model.AsSpan(from, count).ToArray(), part);
            }
            var whole = new byte[end];
            store.Read("k", 0, whole);
            Assert.Equal(model.AsSpan(0, end).ToArray(), whole);
        }
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Given_AReadPastTheWrittenEnd_When_ChecksumsAreOn_Then_ItIsStillAnEndOfStream(bool direct)
    {
        ISwapStore store = Store(direct);
        store.Write("k", 0, new byte[100]);

        Assert.Throws<EndOfStreamException>(() => store.Read("k", 0, new byte[3 * Piece]));
    }
}

using AiOs.Planner.Engine.Storage;

namespace AiOs.Planner.Engine.Tests;

public sealed class SwapDirectoryTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("aios-swap-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void Given_ALockedSwapFolder_When_AnotherRunAcquiresIt_Then_ItIsRefusedAndTheFirstRunKeepsIt()
    {
        using SwapDirectory first = SwapDirectory.Acquire(_root, "r1", keep: false);

        var e = Assert.Throws<IOException>(() => SwapDirectory.Acquire(_root, "r1", keep: false));

        Assert.Contains("in use by another run", e.Message);
        Assert.True(Directory.Exists(first.Path));
    }

    [Fact]
    public void Given_ASwapFolder_When_Disposed_Then_ItIsRemovedUnlessKept()
    {
        string removed, kept;
        using (SwapDirectory a = SwapDirectory.Acquire(_root, "gone", keep: false))
        {
            File.WriteAllText(a.FileFor("x"), "data");
            removed = a.Path;
        }
        using (SwapDirectory b = SwapDirectory.Acquire(_root, "stays", keep: true)) kept = b.Path;

        Assert.False(Directory.Exists(removed));
        Assert.True(Directory.Exists(kept));
        Assert.Equal("aios-stays", Path.GetFileName(kept));
    }

    [Fact]
    public void Given_AnNvmePathThatIsAFile_When_Acquired_Then_TheErrorNamesThePath()
    {
        string file = Path.Combine(_root, "plain-file");
        File.WriteAllText(file, "");

        var e = Assert.Throws<IOException>(() => SwapDirectory.Acquire(file, "r", keep: false));

        Assert.Contains("plain-file", e.Message);
    }

    [Fact]
    public void Given_AKeyWithASlash_When_UsedAsAFileName_Then_ItIsRefused()
    {
        using SwapDirectory d = SwapDirectory.Acquire(_root, "keys", keep: false);

        Assert.Throws<ArgumentException>(() => d.FileFor("../escape"));
    }
}

public sealed class FileSwapStoreTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("aios-store-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void Given_WritesAtOffsets_When_ReadBack_Then_TheBytesMatch()
    {
        using SwapDirectory dir = SwapDirectory.Acquire(_root, "s", keep: false);
        using var store = new FileSwapStore(dir);
        byte[] a = Enumerable.Range(0, 100).Select(i => (byte)i).ToArray();
        byte[] b = Enumerable.Range(0, 50).Select(i => (byte)(255 - i)).ToArray();

        store.Write("k", 0, a);
        store.Write("k", 100, b);
        var read = new byte[150];
        store.Read("k", 0, read);

        Assert.Equal(a.Concat(b).ToArray(), read);
    }

    [Fact]
    public void Given_AShortObject_When_ReadPastItsEnd_Then_ItFailsClearly()
    {
        using SwapDirectory dir = SwapDirectory.Acquire(_root, "t", keep: false);
        using var store = new FileSwapStore(dir);
        store.Write("k", 0, new byte[10]);

        var e = Assert.Throws<EndOfStreamException>(() => store.Read("k", 0, new byte[20]));

        Assert.Contains("'k'", e.Message);
    }
}

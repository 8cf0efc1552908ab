using AiOs.Planner.Engine.Native;

namespace AiOs.Planner.Engine.Tests;

public sealed class ElfVersionPatcherTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("aios-elf-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The pristine TorchSharp native library from the NuGet cache (never patched by the engine).</summary>
    private static string PackageNative()
    {
        string home = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        return Path.Combine(home, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
    }

    [Fact]
    public void Given_TorchSharpNative_When_Read_Then_ItNeedsGlibcxx3432FromLibStdCxx()
    {
        ElfVersionInfo info = ElfVersionInfo.Read(PackageNative());

        ElfVersionNeed need = Assert.Single(info.Needs, n => n.Version == TorchRuntime.MissingVersion);
        Assert.Equal("libstdc++.so.6", need.File);
        Assert.Contains(info.Needs, n => n.File == "libc.so.6" && n.Version == "GLIBC_2.2.5");
    }

    [Fact]
    public void Given_ACopy_When_MarkedWeak_Then_OnlyTheFlagBytesChangeAndASecondCallIsANoOp()
    {
        string copy = Path.Combine(_dir, "libLibTorchSharp.so");
        File.Copy(PackageNative(), copy);
        byte[] before = File.ReadAllBytes(copy);
        var needBefore = ElfVersionInfo.Parse(before, copy).Needs.Single(n => n.Version == TorchRuntime.MissingVersion);
        Assert.False(needBefore.IsWeak);

        Assert.Equal(WeakPatchOutcome.Patched, ElfVersionPatcher.MarkWeak(copy, "libstdc++.so.6", TorchRuntime.MissingVersion));
        byte[] after = File.ReadAllBytes(copy);

        Assert.Equal(before.Length, after.Length);
        int[] changed = Enumerable.Range(0, before.Length).Where(i => before[i] != after[i]).ToArray();
        Assert.Equal([(int)needBefore.FlagsOffset], changed);
        var needAfter = ElfVersionInfo.Parse(after, copy).Needs.Single(n => n.Version == TorchRuntime.MissingVersion);
        Assert.True(needAfter.IsWeak);
        Assert.All(ElfVersionInfo.Parse(after, copy).Needs.Where(n => n.Version != TorchRuntime.MissingVersion), n => Assert.False(n.IsWeak));

        Assert.Equal(WeakPatchOutcome.AlreadyWeak, ElfVersionPatcher.MarkWeak(copy, "libstdc++.so.6", TorchRuntime.MissingVersion));
        Assert.Equal(after, File.ReadAllBytes(copy));
        Assert.Single(Directory.GetFiles(_dir));
    }

    [Fact]
    public void Given_AVersionTheFileDoesNotNeed_When_MarkedWeak_Then_NothingChanges()
    {
        string copy = Path.Combine(_dir, "lib.so");
        File.Copy(PackageNative(), copy);

        Assert.Equal(WeakPatchOutcome.NotRequired, ElfVersionPatcher.MarkWeak(copy, "libstdc++.so.6", "GLIBCXX_9.9.9"));
        Assert.Equal(File.ReadAllBytes(PackageNative()), File.ReadAllBytes(copy));
    }

    [Fact]
    public void Given_SystemLibStdCxx_When_Read_Then_ItDefinesGlibcxxVersions()
    {
        string? path = TorchRuntime.LoadedLibStdCxx();

        Assert.NotNull(path);
        Assert.Contains("GLIBCXX_3.4", ElfVersionInfo.Read(path).Definitions);
    }

    [Fact]
    public void Given_NotAnElfFile_When_Parsed_Then_ItIsRefused()
    {
        Assert.Throws<InvalidDataException>(() => ElfVersionInfo.Parse(new byte[128], "zeros"));
    }
}

using AiOs.Planner.IO;

namespace AiOs.Planner.IO.Tests;

public sealed class DirectFileCreateNewTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("aios-dfcn-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Given_a_link_planted_at_the_name_When_created_new_Then_it_fails_and_the_target_keeps_its_bytes()
    {
        string target = Path.Combine(_dir, "victim");
        File.WriteAllText(target, "precious");
        string name = Path.Combine(_dir, "scratch");
        File.CreateSymbolicLink(name, target);

        var e = Assert.ThrowsAny<DirectIoException>(() => DirectFile.Open(name, DirectFileMode.CreateNew).Dispose());

        Assert.Equal(17, e.Errno); // EEXIST
        Assert.Equal("precious", File.ReadAllText(target));
    }

    [Fact]
    public void Given_a_free_name_When_created_new_Then_the_file_is_owner_only_and_takes_aligned_writes()
    {
        string name = Path.Combine(_dir, "scratch");
        using var file = DirectFile.Open(name, DirectFileMode.CreateNew);
        using var buffer = new AlignedBuffer(new Units.Bytes(4096));

        Assert.Equal(4096, file.Write(buffer, 0, 4096, 0));
        if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(name));
    }

    [Fact]
    public void Given_a_tmpfs_folder_When_created_new_Then_it_falls_back_to_buffered_and_leaves_no_stray_file()
    {
        if (!Directory.Exists("/dev/shm")) return;
        string name = Path.Combine("/dev/shm", "aios-dfcn-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var file = DirectFile.Open(name, DirectFileMode.CreateNew);
            Assert.True(file.IsDirect || file.FallbackWarning is not null);
        }
        finally
        {
            File.Delete(name);
        }
    }
}

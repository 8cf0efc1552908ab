using AiOs.Planner.Units;

namespace AiOs.Planner.IO.Tests;

public class DirectFileTests
{
    [Fact]
    public void Given_a_file_on_disk_When_written_and_read_back_Then_the_bytes_match_and_O_DIRECT_is_used()
    {
        using var dir = new TempDir();
        using var data = new AlignedBuffer(Bytes.FromKiB(256));
        using var back = new AlignedBuffer(Bytes.FromKiB(256));
        Pattern.Fill(data.AsSpan(), 1);
        using (var f = DirectFile.Open(dir.File("a"), DirectFileMode.ReadWrite))
        {
            Assert.True(f.IsDirect);
            Assert.Null(f.FallbackWarning);
            Assert.Equal(data.Length, f.Write(data, 0, data.Length, 8192));
            Assert.Equal(8192 + data.Length, f.Length.Value);
        }
        using (var f = DirectFile.Open(dir.File("a"), DirectFileMode.Read))
            Assert.Equal(back.Length, f.Read(back, 0, back.Length, 8192));
        Assert.True(data.AsSpan().SequenceEqual(back.AsSpan()));
    }

    [Theory]
    [InlineData(100, 4096, 0)]
    [InlineData(0, 1000, 0)]
    [InlineData(0, 4096, 512)]
    public void Given_a_misaligned_request_When_read_Then_MisalignedIoException_names_the_rule(long fileOffset, long length, long bufferOffset)
    {
        using var dir = new TempDir();
        using var buffer = new AlignedBuffer(Bytes.FromKiB(16));
        using var f = DirectFile.Open(dir.File("a"), DirectFileMode.ReadWrite);
        var e = Assert.Throws<MisalignedIoException>(() => f.Read(buffer, bufferOffset, length, fileOffset));
        Assert.Contains("4096", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_a_device_without_O_DIRECT_When_opened_Then_it_falls_back_to_buffered_with_a_warning()
    {
        // /dev/full refuses O_DIRECT with EINVAL, as tmpfs did before Linux 6.6.
        using var f = DirectFile.Open("/dev/full", DirectFileMode.ReadWrite);
        Assert.False(f.IsDirect);
        Assert.Contains("O_DIRECT", f.FallbackWarning, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_tmpfs_When_a_file_is_written_and_read_Then_it_works_directly_or_with_a_fallback_warning()
    {
        // tmpfs refused O_DIRECT before Linux 6.6 and accepts it since; either way the data must round-trip.
        string path = $"/dev/shm/aios-io-test-{Guid.NewGuid():N}";
        try
        {
            using var data = new AlignedBuffer(Bytes.FromKiB(64));
            using var back = new AlignedBuffer(Bytes.FromKiB(64));
            Pattern.Fill(data.AsSpan(), 3);
            using var f = DirectFile.Open(path, DirectFileMode.ReadWrite);
            Assert.Equal(f.IsDirect, f.FallbackWarning is null);
            f.Write(data, 0, data.Length, 0);
            f.Read(back, 0, back.Length, 0);
            Assert.True(data.AsSpan().SequenceEqual(back.AsSpan()));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Given_a_full_device_When_written_Then_DiskFullException_is_thrown()
    {
        using var f = DirectFile.Open("/dev/full", DirectFileMode.ReadWrite);
        using var buffer = new AlignedBuffer(Bytes.FromKiB(4));
        var e = Assert.Throws<DiskFullException>(() => f.Write(buffer, 0, buffer.Length, 0));
        Assert.Equal(28, e.Errno);
    }

    [Fact]
    public void Given_a_missing_folder_When_opened_Then_the_error_names_the_path()
    {
        var e = Assert.Throws<DirectIoException>(() => DirectFile.Open("/tmp/aios-no-such-dir/x", DirectFileMode.ReadWrite));
        Assert.Contains("/tmp/aios-no-such-dir/x", e.Message, StringComparison.Ordinal);
        Assert.Equal(2, e.Errno);
    }

    [Theory]
    [InlineData(28, typeof(DiskFullException))]
    [InlineData(22, typeof(MisalignedIoException))]
    [InlineData(5, typeof(DirectIoException))]
    public void Given_an_errno_When_mapped_Then_the_exception_type_fits(int errno, Type expected)
    {
        var e = DirectIoException.FromErrno(errno, "read", "/x");
        Assert.IsType(expected, e);
        Assert.Equal(errno, e.Errno);
        Assert.Contains("/x", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_EIO_When_mapped_Then_the_message_says_the_device_failed()
    {
        Assert.Contains("I/O error", DirectIoException.FromErrno(5, "read", "/x").Message, StringComparison.Ordinal);
    }
}

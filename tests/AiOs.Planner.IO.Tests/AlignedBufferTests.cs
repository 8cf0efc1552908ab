using AiOs.Planner.Units;

namespace AiOs.Planner.IO.Tests;

public class AlignedBufferTests
{
    [Fact]
    public void Given_a_size_of_whole_pages_When_allocated_Then_the_address_is_4096_aligned()
    {
        using var buffer = new AlignedBuffer(Bytes.FromKiB(64));
        Assert.Equal(0, buffer.Address % AlignedBuffer.Alignment);
        Assert.Equal(65536, buffer.AsSpan().Length);
        Assert.Equal(16384, buffer.AsFloats().Length);
    }

    [Fact]
    public void Given_a_size_that_is_not_a_multiple_of_4096_When_allocated_Then_it_is_refused()
    {
        Assert.Throws<MisalignedIoException>(() => new AlignedBuffer(new Bytes(5000)));
    }

    [Fact]
    public void Given_a_disposed_buffer_When_its_address_is_asked_Then_it_throws()
    {
        var buffer = new AlignedBuffer(Bytes.FromKiB(4));
        buffer.Dispose();
        Assert.Throws<ObjectDisposedException>(() => buffer.Address);
    }

    [Fact]
    public async Task Given_memory_owned_elsewhere_When_wrapped_and_used_for_direct_io_Then_data_lands_there_and_dispose_does_not_free_it()
    {
        using var owner = new AlignedBuffer(Bytes.FromKiB(64));
        owner.AsSpan().Fill(7);
        string path = System.IO.Path.Combine("/tmp", "aios-wrap-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var view = AlignedBuffer.Wrap(owner.Address + 4096, Bytes.FromKiB(32)))
            using (var f = DirectFile.Open(path, DirectFileMode.ReadWrite))
            using (var engine = new AsyncIoEngine(new Settings.AioSettings { BlockSize = Bytes.FromKiB(8) }))
            {
                await engine.WriteAsync(f, view, 0);
                view.AsSpan().Clear();
                await engine.ReadAsync(f, view, 0);
            }
            Assert.All(owner.AsSpan().ToArray(), b => Assert.Equal(7, b));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Given_an_unaligned_address_When_wrapped_Then_it_is_refused()
    {
        using var owner = new AlignedBuffer(Bytes.FromKiB(16));
        Assert.Throws<MisalignedIoException>(() => AlignedBuffer.Wrap(owner.Address + 64, Bytes.FromKiB(4)));
    }
}

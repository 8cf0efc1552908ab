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
}

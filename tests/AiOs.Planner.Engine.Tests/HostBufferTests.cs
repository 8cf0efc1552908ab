using System.Runtime.InteropServices;
using AiOs.Planner.Engine.Native;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Tests;

/// <summary>The engine's own host tensors: stored once at their exact size, zeroed, resident as soon as they are made.</summary>
public sealed class HostBufferTests
{
    [Theory]
    [InlineData(1L, ScalarType.Float32)]
    [InlineData(30_740_800L, ScalarType.BFloat16)] // a gpt2-xl layer: 61.5 MB, which PyTorch's pinned allocator rounds to 64 MiB
    [InlineData(100_000_001L, ScalarType.Float32)]
    public void Given_a_size_When_allocated_Then_it_maps_the_bytes_rounded_to_a_page_not_to_a_power_of_two(long elements, ScalarType dtype)
    {
        using HostBuffer b = HostBuffer.Allocate(elements, dtype, pin: false);

        long bytes = elements * HostBuffer.ElementSize(dtype);
        Assert.Equal((bytes + 4095) / 4096 * 4096, b.MappedBytes);
        Assert.Equal(elements, b.Tensor.numel());
        Assert.Equal(dtype, b.Tensor.dtype);
        Assert.False(b.Pinned);
    }

    [Fact]
    public void Given_a_buffer_When_written_through_its_tensor_Then_the_memory_at_its_address_holds_the_values_no_copy_was_made()
    {
        using HostBuffer b = HostBuffer.Allocate(1000, ScalarType.Float32, pin: false);

        Assert.All(MemoryMarshal.Cast<byte, float>(b.Tensor.bytes).ToArray(), v => Assert.Equal(0f, v));
        using (var _ = no_grad()) b.Tensor.copy_(arange(1000, ScalarType.Float32));

        Assert.Equal(b.Address, CudaDriver.DataOf(b.Tensor));
        Assert.Equal(999f, Marshal.PtrToStructure<float>(b.Address + 999 * sizeof(float)));
    }

    [Fact]
    public void Given_a_large_buffer_When_allocated_Then_its_pages_are_resident_before_anything_writes_them()
    {
        // The first step used to fault in every gradient and moment page; a buffer made here is resident at once. Its own pages
        // are asked (mincore), not the process's resident set, which tests running beside it move both ways (CI, 2026-12-06:
        // it grew by 184 MiB for this 256 MiB buffer while another test freed memory).
        const long bytes = 256L << 20;

        using HostBuffer b = HostBuffer.Allocate(bytes / 4, ScalarType.Float32, pin: false);

        var (resident, pages) = ResidentPages(b.Address, bytes);
        Assert.True(resident >= pages * 9 / 10, $"{resident:N0} of the buffer's {pages:N0} pages are resident");
    }

    [Fact]
    public void Given_read_only_zeros_When_read_whole_Then_they_are_zero_and_add_nothing_to_the_resident_set()
    {
        // The moments are initialised from such zeros: a managed zero array as large as the outer block could be cleared (touched) by the GC.
        const int floats = 64 << 20;
        long before = ResidentBytes();

        using HostBuffer zeros = HostBuffer.ReadOnlyZeros(floats, ScalarType.Float32);
        bool allZero = !zeros.Floats(floats).ContainsAnyExcept(0f);

        Assert.True(allZero);
        Assert.True(ResidentBytes() - before < 64L << 20, $"RSS grew by {ResidentBytes() - before:N0} bytes reading {4L * floats:N0} bytes of zeros");
    }

    [Fact]
    public void Given_units_When_allocated_together_Then_each_is_its_own_buffer_of_its_size()
    {
        HostBuffer[] buffers = HostBuffer.AllocateMany([10, 5000, 3], ScalarType.BFloat16, pin: false);
        try
        {
            Assert.Equal([10L, 5000L, 3L], buffers.Select(b => b.Tensor.numel()));
            Assert.Equal(3, buffers.Select(b => b.Address).Distinct().Count());
        }
        finally
        {
            foreach (HostBuffer b in buffers) b.Dispose();
        }
    }

    /// <summary>How many of the pages spanning [<paramref name="address"/>, + <paramref name="bytes"/>) are resident (mincore(2)).</summary>
    private static (long Resident, long Pages) ResidentPages(nint address, long bytes)
    {
        long page = Environment.SystemPageSize;
        long start = address / page * page, end = (address + bytes + page - 1) / page * page;
        var vector = new byte[(end - start) / page];
        if (MinCore((nint)start, (nuint)(end - start), vector) != 0)
            throw new InvalidOperationException($"mincore failed (errno {Marshal.GetLastPInvokeError()}).");
        return (vector.LongCount(v => (v & 1) != 0), vector.LongLength);
    }

    [DllImport("libc", EntryPoint = "mincore", SetLastError = true)]
    private static extern int MinCore(nint address, nuint length, byte[] vector);

    private static long ResidentBytes()
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        throw new InvalidOperationException("No VmRSS in /proc/self/status.");
    }
}

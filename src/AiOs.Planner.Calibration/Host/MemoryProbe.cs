using System.Diagnostics;
using System.Runtime.InteropServices;
using AiOs.Planner.IO;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Host;

/// <summary>
/// Memory-copy bandwidth: buffers far larger than any CPU cache copied with Buffer.MemoryCopy,
/// each thread copying its own slice. The rate counts bytes copied (each byte is read once and written
/// once), the way a swap buffer copy moves data.
/// </summary>
public static unsafe class MemoryProbe
{
    /// <summary>Copies <paramref name="size"/> bytes repeatedly for about <paramref name="duration"/> on <paramref name="threads"/> threads.</summary>
    public static Bandwidth Measure(Bytes size, int threads, TimeSpan duration, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        using var source = HugePages.Allocate(size.AlignUp(AlignedBuffer.Alignment * (long)threads));
        using var target = HugePages.Allocate(source.Size);
        // Every byte (a span stops at 2 GiB): every page touched before timing.
        NativeMemory.Fill((void*)source.Address, (nuint)source.Length, 1);
        NativeMemory.Fill((void*)target.Address, (nuint)target.Length, 2);
        long slice = source.Length / threads;
        nint from = source.Address, to = target.Address;
        void CopyOnce() => Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
            Buffer.MemoryCopy((byte*)from + t * slice, (byte*)to + t * slice, slice, slice));
        CopyOnce(); // warm-up
        long copied = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < duration || copied == 0)
        {
            ct.ThrowIfCancellationRequested();
            CopyOnce();
            copied += slice * threads;
        }
        return new Bandwidth(copied / sw.Elapsed.TotalSeconds);
    }
}

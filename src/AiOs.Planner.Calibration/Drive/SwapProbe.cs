using System.Diagnostics;
using AiOs.Planner.IO;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Drive;

/// <summary>
/// <see cref="Cycles"/> swap cycles over a working set of <see cref="WorkingSet"/> bytes: each chunk read (it
/// was written one pass earlier) and then written back with new contents. Rates are bytes over the time spent in that
/// direction's requests.
/// </summary>
public sealed record SwapMeasurement(AioSettings Settings, Bytes Chunk, Bytes WorkingSet, int Cycles, TimeSpan ReadTime, TimeSpan WriteTime)
{
    /// <summary>Bytes read per second of read time.</summary>
    public Bandwidth ReadRate => new(WorkingSet.Value * (double)Cycles / Math.Max(ReadTime.TotalSeconds, 1e-9));
    /// <summary>Bytes written back per second of write time.</summary>
    public Bandwidth WriteRate => new(WorkingSet.Value * (double)Cycles / Math.Max(WriteTime.TotalSeconds, 1e-9));
}

/// <summary>
/// Measures a drive in the pattern training's swap traffic has, which the sequential sweep avoids: the
/// engine reads a sub-group's optimizer state (or a layer's parameters) that it wrote one step earlier,
/// updates it, and writes it back to the same place before reading the next. For each working-set size, the
/// first that many bytes of the test file are written with fresh contents, then cycled twice: each chunk
/// read, then rewritten, one after the other, through the engine's own I/O path (<see cref="ParallelPieces"/>:
/// synchronous direct reads and writes of aio blocks on queue_depth × threads threads, where the sweep uses
/// kernel AIO as DeepSpeed does), with the sweep's DeepSpeed-default settings. On a
/// bare NVMe drive both rates are close to the sweep's; a drive or a virtual disk's host that keeps recent
/// writes in a cache serves the reads faster (more so for working sets it holds), and rewriting blocks just
/// read can cost less than writing cold ones; the I/O path's own difference from AIO counts too. Their
/// ratios to the curves at the same settings are the profile's <c>swap</c> points: what the engine's swap
/// traffic gets against what the sweep measured.
/// </summary>
public static class SwapProbe
{
    /// <summary>Bytes per request: about one transformer layer's parameters or one piece of an optimizer sub-group.</summary>
    public static readonly Bytes DefaultChunk = Bytes.FromMiB(128);

    /// <summary>Measured cycles per working set (after the pass that writes it).</summary>
    public const int Cycles = 2;

    /// <summary>Working sets to measure: the test file, its half and its quarter (those of at least two chunks), smallest first.</summary>
    public static IReadOnlyList<Bytes> Sizes(Bytes fileSize, Bytes chunk)
    {
        var sizes = new List<Bytes>();
        for (int divisor = 4; divisor >= 1; divisor /= 2)
        {
            long size = fileSize.Value / divisor / chunk.Value * chunk.Value;
            if (size >= 2 * chunk.Value && (sizes.Count == 0 || sizes[^1].Value < size)) sizes.Add(new Bytes(size));
        }
        return sizes;
    }

    /// <summary>Bytes moved for all of <see cref="Sizes"/>: each working set written once, then read and rewritten <see cref="Cycles"/> times.</summary>
    public static Bytes TrafficFor(Bytes fileSize, Bytes chunk) => new((1 + 2 * Cycles) * Sizes(fileSize, chunk).Sum(s => s.Value));

    /// <summary>One measurement (<see cref="Cycles"/> cycles) per size of <see cref="Sizes"/>; <paramref name="progress"/> goes from 0 to 1 over all of them.</summary>
    public static async Task<IReadOnlyList<SwapMeasurement>> MeasureSizesAsync(DirectFile file, Bytes fileSize, AioSettings settings, Bytes chunk,
        IProgress<double>? progress, CancellationToken ct)
    {
        var sizes = Sizes(fileSize, chunk);
        double total = sizes.Sum(s => (double)s.Value), done = 0;
        var results = new List<SwapMeasurement>();
        foreach (var size in sizes)
        {
            results.Add(await MeasureAsync(file, size, settings, chunk, progress is null ? null : new Scaled(progress, done / total, size.Value / total), ct).ConfigureAwait(false));
            done += size.Value;
        }
        return results;
    }

    /// <summary>Writes the first <paramref name="workingSet"/> bytes of <paramref name="file"/>, then reads and rewrites them chunk by chunk.</summary>
    public static async Task<SwapMeasurement> MeasureAsync(DirectFile file, Bytes workingSet, AioSettings settings, Bytes chunk,
        IProgress<double>? progress, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(file);
        long chunkBytes = Math.Max(AlignedBuffer.Alignment, chunk.Value / AlignedBuffer.Alignment * AlignedBuffer.Alignment);
        long chunks = workingSet.Value / chunkBytes;
        if (chunks < 2) throw new ArgumentException($"The swap probe needs at least two {new Bytes(chunkBytes)} chunks; the working set is {workingSet}.");

        using var buffer = new AlignedBuffer(new Bytes(chunkBytes));
        new Random(2468).NextBytes(buffer.AsSpan(0, (int)buffer.Length));
        using var pieces = new ParallelPieces(settings);
        long sequence = 0;
        var clock = Stopwatch.StartNew();

        // Synchronous, as the engine's swap store runs them, on a pool thread so the caller's thread is free.
        long Timed(bool write, long offset)
        {
            if (write) PageStamp.Write(buffer.AsSpan(0, (int)chunkBytes), offset, ++sequence);
            long start = clock.ElapsedTicks;
            long n = write ? pieces.Write(file, buffer, 0, chunkBytes, offset) : pieces.Read(file, buffer, 0, chunkBytes, offset);
            if (n != chunkBytes) throw new IOException($"The swap probe moved {n} of {chunkBytes} bytes at offset {offset} of its test file.");
            return clock.ElapsedTicks - start;
        }

        return await Task.Run(() =>
        {
            double turns = chunks * (1.0 + 2 * Cycles);
            // The pass before: the working set written with fresh contents, as the previous step left the swap files.
            for (long k = 0; k < chunks; k++)
            {
                ct.ThrowIfCancellationRequested();
                Timed(write: true, k * chunkBytes);
                progress?.Report((k + 1) / turns);
            }
            long readTicks = 0, writeTicks = 0;
            for (int cycle = 0; cycle < Cycles; cycle++)
                for (long k = 0; k < chunks; k++)
                {
                    ct.ThrowIfCancellationRequested();
                    readTicks += Timed(write: false, k * chunkBytes);
                    writeTicks += Timed(write: true, k * chunkBytes);
                    progress?.Report((chunks * (1 + 2.0 * cycle) + 2.0 * (k + 1)) / turns);
                }
            return new SwapMeasurement(settings, new Bytes(chunkBytes), new Bytes(chunks * chunkBytes), Cycles, Seconds(readTicks), Seconds(writeTicks));
        }, ct).ConfigureAwait(false);
    }

    private static TimeSpan Seconds(long ticks) => TimeSpan.FromSeconds((double)ticks / Stopwatch.Frequency);

    /// <summary>Reports a part's 0..1 as its share of the whole, synchronously.</summary>
    private sealed class Scaled(IProgress<double> sink, double offset, double share) : IProgress<double>
    {
        public void Report(double value) => sink.Report(offset + share * value);
    }
}

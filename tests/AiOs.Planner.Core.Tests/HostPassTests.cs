using AiOs.Planner.Hardware;
using AiOs.Planner.Simulation;
using AiOs.Planner.Units;
using FsCheck;
using FsCheck.Xunit;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The engine's parallel host passes priced in waves of fixed chunks: a wave streams at the node's rate shared by its
/// chunks, never faster per chunk than one thread, so a pass one chunk past the core count pays a second wave.
/// </summary>
public class HostPassTests
{
    private static readonly HostPass Sixteen = new(Bandwidth.FromGBps(40), Bandwidth.FromGBps(10), Threads: 16);
    private const long Chunk = HostPass.ChunkElements;

    /// <summary>Bytes of <paramref name="elements"/> at 10 bytes each over <paramref name="rate"/>, in seconds.</summary>
    private static double Seconds(long elements, Bandwidth rate) => elements * 10.0 / rate.BytesPerSecond;

    [Fact]
    public void Given_a_pass_over_the_cores_When_priced_Then_it_streams_at_the_nodes_rate()
    {
        var time = Sixteen.Time(19 * Chunk, bytesPerElement: 10);

        // 19 chunks at the shared 40 GB/s (5.0 ms) outlast the busiest thread's 2 chunks at 10 GB/s (2.1 ms).
        Assert.Equal(SimDuration.FromSeconds(Seconds(19 * Chunk, Sixteen.Aggregate)), time);
        Assert.Equal(SimDuration.Zero, Sixteen.Time(0, 10));
    }

    [Fact]
    public void Given_fewer_threads_than_the_node_needs_When_priced_Then_the_busiest_threads_chunks_at_one_threads_rate_bound_it()
    {
        var two = Sixteen with { Threads = 2 };

        // 5 chunks on 2 threads: one thread streams 3 chunks at 10 GB/s (3.1 ms), longer than 5 chunks at 40 GB/s (1.3 ms).
        Assert.Equal(SimDuration.FromSeconds(Seconds(3 * Chunk, two.PerThread)), two.Time(5 * Chunk, 10));
        // A pass shorter than a chunk runs on one thread.
        Assert.Equal(SimDuration.FromSeconds(Seconds(1000, two.PerThread)), two.Time(1000, 10));
    }

    [Fact]
    public void Given_an_even_split_When_the_pass_has_fewer_parts_than_cores_Then_its_busiest_thread_streams_one_part()
    {
        var two = Sixteen with { Threads = 2 };
        long elements = 5 * Chunk;

        // Split evenly, each of 2 threads streams 2.5 chunks (2.6 ms at 10 GB/s), not the 3 fixed chunks (3.1 ms).
        Assert.Equal(SimDuration.FromSeconds(Seconds(elements / 2, two.PerThread)), two.Time(elements, 10, HostSplit.Even));
        Assert.True(two.Time(elements, 10, HostSplit.Even) < two.Time(elements, 10, HostSplit.FixedChunks));
        // Below two parts' worth, one thread streams it all.
        Assert.Equal(SimDuration.FromSeconds(Seconds(HostPass.EvenMinPart, two.PerThread)), two.Time(HostPass.EvenMinPart, 10, HostSplit.Even));
    }

    [Property(MaxTest = 200)]
    public bool Given_any_pass_When_the_process_gets_more_cores_Then_it_is_never_slower(PositiveInt megaElements, PositiveInt tail, byte threads, bool even)
    {
        long elements = (megaElements.Get % 200) * Chunk + tail.Get % Chunk;
        int t = 1 + threads % 32;
        var split = even ? HostSplit.Even : HostSplit.FixedChunks;
        var fewer = Sixteen with { Threads = t };
        var more = Sixteen with { Threads = t + 1 };
        return more.Time(elements, 10, split) <= fewer.Time(elements, 10, split);
    }

    [Fact]
    public void Given_the_calibrators_method_string_When_read_Then_its_one_thread_figure_is_the_per_thread_rate()
    {
        var figure = Figure.Measured(46.203, "2026-12-05",
            "memory copy (Buffer.MemoryCopy) of large buffers, bytes copied per second, best of 1 thread (10.15 GB/s) and 16 threads (46.20 GB/s)");
        var cpu = new CpuSpec { Cores = 16, RamGib = new(128), MemoryBandwidthGbps = figure, AdamParamsPerS = new(1e9) };

        var pass = HostPass.Of(cpu, processes: 2);

        Assert.Equal(Bandwidth.FromGBps(10.15), pass.PerThread);
        // Two GPU processes share the node: half its rate and half its cores each.
        Assert.Equal(Bandwidth.FromGBps(46.203 / 2), pass.Aggregate);
        Assert.Equal(8, pass.Threads);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("STREAM triad, 16 threads")]
    public void Given_a_profile_without_a_one_thread_figure_When_read_Then_one_thread_streams_a_quarter_of_the_node(string? method)
    {
        var figure = method is null ? new Figure(40) : Figure.Measured(40, "2026-12-05", method);
        var cpu = new CpuSpec { Cores = 8, RamGib = new(64), MemoryBandwidthGbps = figure, AdamParamsPerS = new(1e9) };

        var pass = HostPass.Of(cpu, processes: 1);

        Assert.Null(HostPass.OneThread(figure));
        Assert.Equal(Bandwidth.FromGBps(40) * HostPass.FallbackOneThreadShare, pass.PerThread);
    }
}

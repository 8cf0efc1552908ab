using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.IO.Tests;

public class AsyncIoEngineTests
{
    private static AioSettings Aio(int blockKiB, int depth, int threads, bool single = false, bool overlap = true) => new()
    {
        BlockSize = Bytes.FromKiB(blockKiB),
        QueueDepth = depth,
        IntraOpParallelism = threads,
        SingleSubmit = single,
        OverlapEvents = overlap,
    };

    [Theory]
    [InlineData(64, 1, 1, false, true)]
    [InlineData(64, 8, 1, false, true)]
    [InlineData(16, 4, 3, false, true)]
    [InlineData(64, 8, 2, true, true)]
    [InlineData(64, 8, 2, false, false)]
    [InlineData(1024, 32, 1, false, true)]
    public async Task Given_any_aio_settings_When_a_buffer_is_written_and_read_back_Then_every_byte_matches(
        int blockKiB, int depth, int threads, bool single, bool overlap)
    {
        using var dir = new TempDir();
        // 37 pages: not a multiple of the block size nor of the thread count, so the last slice and block are partial.
        var size = Bytes.FromKiB(4 * 37 * 8);
        using var data = new AlignedBuffer(size);
        using var back = new AlignedBuffer(size);
        Pattern.Fill(data.AsSpan(), blockKiB + depth + threads);
        using var engine = new AsyncIoEngine(Aio(blockKiB, depth, threads, single, overlap));
        using var f = DirectFile.Open(dir.File("a"), DirectFileMode.ReadWrite);

        Assert.Equal(size.Value, await engine.WriteAsync(f, data, 4096));
        Assert.Equal(size.Value, await engine.ReadAsync(f, back, 4096));

        Assert.True(data.AsSpan().SequenceEqual(back.AsSpan()));
    }

    [Fact]
    public async Task Given_many_requests_queued_at_once_When_awaited_together_Then_each_lands_at_its_own_offset()
    {
        using var dir = new TempDir();
        const int parts = 12;
        var part = Bytes.FromKiB(128);
        using var data = new AlignedBuffer(part * parts);
        using var back = new AlignedBuffer(part * parts);
        Pattern.Fill(data.AsSpan(), 7);
        using var engine = new AsyncIoEngine(Aio(32, 4, 2));
        using var f = DirectFile.Open(dir.File("a"), DirectFileMode.ReadWrite);

        await Task.WhenAll(Enumerable.Range(0, parts).Select(i => engine.WriteAsync(f, data, i * part.Value, part.Value, i * part.Value)));
        await Task.WhenAll(Enumerable.Range(0, parts).Reverse().Select(i => engine.ReadAsync(f, back, i * part.Value, part.Value, i * part.Value)));

        Assert.True(data.AsSpan().SequenceEqual(back.AsSpan()));
    }

    [Fact]
    public async Task Given_a_read_past_the_end_of_the_file_When_awaited_Then_it_returns_the_bytes_that_exist()
    {
        using var dir = new TempDir();
        using var buffer = new AlignedBuffer(Bytes.FromKiB(256));
        using var engine = new AsyncIoEngine(Aio(64, 4, 1));
        using var f = DirectFile.Open(dir.File("a"), DirectFileMode.ReadWrite);
        await engine.WriteAsync(f, buffer, 0, 64 * 1024, 0);

        long read = await engine.ReadAsync(f, buffer, 0);

        Assert.Equal(64 * 1024, read);
    }

    [Fact]
    public async Task Given_a_full_device_When_written_asynchronously_Then_DiskFullException_is_thrown()
    {
        using var buffer = new AlignedBuffer(Bytes.FromKiB(64));
        using var engine = new AsyncIoEngine(Aio(16, 4, 1));
        using var f = DirectFile.Open("/dev/full", DirectFileMode.ReadWrite);

        await Assert.ThrowsAsync<DiskFullException>(() => engine.WriteAsync(f, buffer, 0));
    }

    [Fact]
    public void Given_a_misaligned_offset_When_submitted_Then_it_is_refused_before_reaching_the_kernel()
    {
        using var dir = new TempDir();
        using var buffer = new AlignedBuffer(Bytes.FromKiB(64));
        using var engine = new AsyncIoEngine(Aio(16, 4, 1));
        using var f = DirectFile.Open(dir.File("a"), DirectFileMode.ReadWrite);

        Assert.Throws<MisalignedIoException>(() => { _ = engine.WriteAsync(f, buffer, 0, 4096, 100); });
    }

    [Fact]
    public void Given_a_block_size_that_is_not_whole_pages_When_the_engine_starts_Then_it_is_refused()
    {
        Assert.Throws<MisalignedIoException>(() => new AsyncIoEngine(new AioSettings { BlockSize = new Bytes(1000) }));
    }

    [Fact]
    public async Task Given_a_cancelled_token_When_a_write_is_requested_Then_the_task_is_cancelled_and_nothing_is_written()
    {
        using var dir = new TempDir();
        using var buffer = new AlignedBuffer(Bytes.FromKiB(64));
        using var engine = new AsyncIoEngine(Aio(16, 4, 1));
        using var f = DirectFile.Open(dir.File("a"), DirectFileMode.ReadWrite);
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => engine.WriteAsync(f, buffer, 0, cts.Token));
        Assert.Equal(0, f.Length.Value);
    }
}

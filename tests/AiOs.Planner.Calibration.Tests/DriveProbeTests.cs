using AiOs.Planner.Calibration.Drive;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Tests;

public class DriveProbeTests
{
    [Theory]
    [InlineData(128, 1, 1, 16)]
    [InlineData(1024, 8, 1, 16)]
    [InlineData(256, 4, 3, 16)]
    [InlineData(8192, 4, 2, 64)]
    public void Given_any_settings_When_the_request_size_is_chosen_Then_it_fills_every_queue_and_splits_into_whole_blocks(int blockKiB, int depth, int threads, int expectedMiB)
    {
        var s = new AioSettings { BlockSize = Bytes.FromKiB(blockKiB), QueueDepth = depth, IntraOpParallelism = threads };
        var chunk = DriveProbe.ChunkFor(s);

        Assert.True(chunk >= s.InFlight);
        Assert.Equal(0, chunk.Value % (s.BlockSize.Value * threads));
        Assert.InRange(chunk.Value, Bytes.FromMiB(16).Value, Bytes.FromMiB(expectedMiB).Value + s.BlockSize.Value * threads);
    }

    [Fact]
    public async Task Given_a_small_test_file_When_laid_out_and_read_Then_every_byte_is_accounted_for()
    {
        string dir = Directory.CreateTempSubdirectory("aios-probe-").FullName;
        try
        {
            using var file = TestFile.Create(dir, Bytes.FromMiB(64), Bytes.FromMiB(64));
            using var probe = new DriveProbe(file.File, file.Size);
            var settings = new AioSettings { BlockSize = Bytes.FromKiB(512), QueueDepth = 4 };

            var layout = await probe.LayOutAsync(settings, 4, null, CancellationToken.None);
            var read = await probe.MeasureAsync(settings, IoDirection.Read, TimeSpan.Zero, Bytes.FromMiB(48), CancellationToken.None);
            var region = await probe.MeasureRegionAsync(settings, IoDirection.Write, Bytes.FromMiB(16), Bytes.FromMiB(32), CancellationToken.None);

            Assert.Equal(Bytes.FromMiB(64), new Bytes(layout.Sum(s => s.Moved.Value)));
            Assert.Equal(4, layout.Count);
            Assert.True(read.Moved >= Bytes.FromMiB(48));
            Assert.Equal(Bytes.FromMiB(32), region.Moved);
            Assert.True(read.Rate.BytesPerSecond > 0);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task Given_a_laid_out_file_When_read_back_Then_every_page_carries_its_own_offset_so_no_two_pages_are_alike()
    {
        string dir = Directory.CreateTempSubdirectory("aios-stamp-").FullName;
        try
        {
            using var file = TestFile.Create(dir, Bytes.FromMiB(64), Bytes.FromMiB(64));
            using (var probe = new DriveProbe(file.File, file.Size))
                await probe.LayOutAsync(new AioSettings { BlockSize = Bytes.FromKiB(256), QueueDepth = 4 }, 2, null, CancellationToken.None);
            using var back = new IO.AlignedBuffer(file.Size);
            file.File.Read(back, 0, back.Length, 0);

            var bytes = back.AsSpan(0, (int)back.Length);
            for (int page = 0; page < bytes.Length; page += IO.AlignedBuffer.Alignment)
                Assert.Equal(page, System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(bytes[page..]));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}

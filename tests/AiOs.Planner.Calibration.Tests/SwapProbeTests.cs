using AiOs.Planner.Calibration.Drive;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Tests;

public class SwapProbeTests
{
    [Theory]
    [InlineData(32768, 128, new[] { 8192L, 16384, 32768 })]
    [InlineData(1024, 128, new[] { 256L, 512, 1024 })]
    [InlineData(300, 128, new[] { 256L })]
    [InlineData(200, 128, new long[0])]
    public void Given_a_test_file_When_working_sets_are_chosen_Then_they_are_its_quarter_half_and_whole_in_whole_chunks_of_at_least_two(long fileMiB, long chunkMiB, long[] expectedMiB)
    {
        var sizes = SwapProbe.Sizes(Bytes.FromMiB(fileMiB), Bytes.FromMiB(chunkMiB));

        Assert.Equal(expectedMiB, sizes.Select(s => s.Value / Bytes.FromMiB(1).Value).ToArray());
    }

    [Fact]
    public async Task Given_a_small_test_file_When_cycled_Then_each_working_set_is_read_and_rewritten_twice_and_the_file_holds_fresh_stamps()
    {
        string dir = Directory.CreateTempSubdirectory("aios-swap-").FullName;
        try
        {
            using var file = TestFile.Create(dir, Bytes.FromMiB(64), Bytes.FromMiB(64));
            var chunk = Bytes.FromMiB(8);
            var reports = new List<double>();
            var progress = new ImmediateProgress<double>(reports.Add);

            var results = await SwapProbe.MeasureSizesAsync(file.File, file.Size, new AioSettings { BlockSize = Bytes.FromKiB(256), QueueDepth = 4 }, chunk, progress, CancellationToken.None);

            Assert.Equal(new[] { 16L, 32, 64 }, results.Select(r => r.WorkingSet.Value / Bytes.FromMiB(1).Value).ToArray());
            Assert.All(results, r =>
            {
                Assert.Equal(SwapProbe.Cycles, r.Cycles);
                Assert.True(r.ReadRate.BytesPerSecond > 0 && r.WriteRate.BytesPerSecond > 0);
                Assert.True(r.ReadTime > TimeSpan.Zero && r.WriteTime > TimeSpan.Zero);
            });
            Assert.Equal(1.0, reports[^1], 1e-9);
            Assert.True(reports.Zip(reports.Skip(1)).All(p => p.Second >= p.First - 1e-12), "progress never goes back");
            // The last rewrite stamped every page of the whole file with its own offset.
            using var back = new IO.AlignedBuffer(file.Size);
            file.File.Read(back, 0, back.Length, 0);
            for (long page = 0; page < back.Length; page += IO.AlignedBuffer.Alignment)
                Assert.Equal(page, BitConverter.ToInt64(back.AsSpan(page, 8)));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Given_the_traffic_estimate_When_computed_Then_it_counts_the_first_write_and_two_read_and_rewrite_cycles()
    {
        var traffic = SwapProbe.TrafficFor(Bytes.FromGiB(8), Bytes.FromMiB(128));

        Assert.Equal(Bytes.FromGiB(5 * (2 + 4 + 8)), traffic);
    }
}

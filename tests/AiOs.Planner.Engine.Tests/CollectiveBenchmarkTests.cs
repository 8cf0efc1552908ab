using AiOs.Planner.Engine.Collectives;

namespace AiOs.Planner.Engine.Tests;

public sealed class CollectiveBenchmarkTests
{
    [Theory]
    [InlineData(CollectiveKind.AllGather, 2, 0.5)]
    [InlineData(CollectiveKind.ReduceScatter, 4, 0.75)]
    [InlineData(CollectiveKind.AllReduce, 2, 1.0)]
    [InlineData(CollectiveKind.AllReduce, 8, 1.75)]
    public void Given_ACollective_When_ItsBusBandwidthIsTaken_Then_ItIsNcclTestsShareOfTheAlgorithmBandwidth(CollectiveKind kind, int ranks, double factor)
    {
        var timing = new CollectiveTiming(kind, 4_000_000_000, ranks, 1.0);

        Assert.Equal(4.0, timing.AlgorithmGBps, 9);
        Assert.Equal(4.0 * factor, timing.BusGBps, 9);
    }

    [Fact]
    public void Given_TwoRanksAsThreads_When_Benchmarked_Then_EveryRankTimesEveryCollectiveAtEverySize()
    {
        var results = CollectiveThreads.Run(2, c => CollectiveBenchmark.Run(c, TorchSharp.torch.CPU, [1 << 16, 1 << 18], repeats: 1), regionBytes: 1 << 16);

        foreach (var rows in results)
        {
            Assert.Equal(6, rows.Count);
            Assert.All(rows, r => Assert.True(r.Seconds > 0 && r.Ranks == 2));
            Assert.Equal([1L << 16, 1L << 16, 1L << 16, 1L << 18, 1L << 18, 1L << 18], rows.Select(r => r.Bytes));
        }
    }
}

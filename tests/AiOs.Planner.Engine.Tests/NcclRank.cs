using System.Diagnostics;
using AiOs.Planner.Engine.Collectives;
using AiOs.Planner.Engine.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// The "nccl" mode of <see cref="CollectivesTestHost"/>: one rank on cuda:LOCAL_RANK runs the collectives through NCCL on
/// device tensors, checks them against the values every rank can compute (integers, so any summation order is exact),
/// and measures an all-reduce's bus bandwidth. Needs 2+ GPUs and PyTorch's CUDA libtorch (docs/user-guide.md, "Several GPUs").
/// </summary>
internal static class NcclRank
{
    public static int Run(RankEnvironment rank)
    {
        TorchRuntime.EnsureReady(DeviceType.CUDA);
        var device = torch.device(DeviceType.CUDA, rank.LocalRank);
        using var nccl = NcclCollectives.Join(new NcclOptions(rank.Rendezvous, rank.Rank, rank.WorldSize, rank.LocalRank, 0));
        int w = rank.WorldSize, n = 1 << 20;
        // Rank r holds r·(i mod 7): sums are small integers, exact in fp32 and bf16 whatever order NCCL adds in.
        Tensor Pattern(int r, long count, ScalarType type) => (torch.arange(count, dtype: ScalarType.Int64) % 7 * r).to(type).to(device);
        int failures = 0;
        foreach (ScalarType type in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            var element = type == ScalarType.Float32 ? CollectiveElement.Float32 : CollectiveElement.BFloat16;
            using var mine = Pattern(rank.Rank + 1, n, type);
            using var gathered = torch.empty(n * w, dtype: type, device: device);
            nccl.AllGather(CudaDriver.DataOf(mine), CudaDriver.DataOf(gathered), n, element);
            using var whole = Pattern(rank.Rank + 1, (long)n * w, type);
            using var shard = torch.empty(n, dtype: type, device: device);
            nccl.ReduceScatter(CudaDriver.DataOf(whole), CudaDriver.DataOf(shard), n, element, ReduceOperation.Sum);
            using var reduced = Pattern(rank.Rank + 1, n, type);
            nccl.AllReduce(CudaDriver.DataOf(reduced), CudaDriver.DataOf(reduced), n, element, ReduceOperation.Sum);
            using var broadcast = Pattern(rank.Rank + 1, n, type);
            nccl.Broadcast(CudaDriver.DataOf(broadcast), n, element, root: 1);
            nccl.Synchronize();
            int sumOfRanks = w * (w + 1) / 2;
            using var expectGathered = torch.cat([.. Enumerable.Range(1, w).Select(r => Pattern(r, n, type))]);
            using var expectShard = Pattern(sumOfRanks, (long)n * w, type).narrow(0, (long)rank.Rank * n, n);
            using var expectReduced = Pattern(sumOfRanks, n, type);
            using var expectBroadcast = Pattern(2, n, type);
            foreach (var (name, got, want) in new[] { ("all-gather", gathered, expectGathered), ("reduce-scatter", shard, expectShard), ("all-reduce", reduced, expectReduced), ("broadcast", broadcast, expectBroadcast) })
            {
                if (torch.equal(got, want).item<bool>()) continue;
                Console.Error.WriteLine($"rank {rank.Rank}: NCCL {name} ({type}) differs from the expected values");
                failures++;
            }
        }
        // Bus bandwidth of a 256 MiB fp32 all-reduce, as nccl-tests reports it: bytes × 2(w−1)/w per second.
        long count = 64L << 20;
        using var big = torch.ones(count, dtype: ScalarType.Float32, device: device);
        for (int i = 0; i < 3; i++) nccl.AllReduce(CudaDriver.DataOf(big), CudaDriver.DataOf(big), count, CollectiveElement.Float32, ReduceOperation.Sum);
        nccl.Synchronize();
        const int repeats = 10;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < repeats; i++) nccl.AllReduce(CudaDriver.DataOf(big), CudaDriver.DataOf(big), count, CollectiveElement.Float32, ReduceOperation.Sum);
        nccl.Synchronize();
        double seconds = clock.Elapsed.TotalSeconds / repeats;
        double busGBps = count * 4.0 * 2 * (w - 1) / w / seconds / 1e9;
        Console.WriteLine($"rank {rank.Rank}: NCCL {NcclCollectives.Version()} all-reduce 256 MiB fp32 over {w} GPUs: {seconds * 1e3:F2} ms, bus bandwidth {busGBps:F1} GB/s");
        return failures == 0 ? 0 : 1;
    }
}

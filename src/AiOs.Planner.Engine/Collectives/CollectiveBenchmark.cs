using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Collectives;

/// <summary>The collective a <see cref="CollectiveBenchmark"/> row times.</summary>
public enum CollectiveKind
{
    AllGather,
    ReduceScatter,
    AllReduce,
}

/// <summary>
/// One measured collective, in nccl-tests' terms: <see cref="Bytes"/> is the size of the whole (gathered or reduced)
/// buffer; the algorithm bandwidth is that size over the time; the bus bandwidth scales it by what each rank's link
/// carries in a ring ((n−1)/n for all-gather and reduce-scatter, 2(n−1)/n for all-reduce), the figure to compare with a
/// profile's <c>gpu_link.gbps</c> (which the simulator divides the same (n−1)/n share of a collective's bytes by).
/// </summary>
/// <param name="Kind">Which collective.</param>
/// <param name="Bytes">Bytes of the whole buffer.</param>
/// <param name="Ranks">Ranks taking part.</param>
/// <param name="Seconds">Median time of one call.</param>
public sealed record CollectiveTiming(CollectiveKind Kind, long Bytes, int Ranks, double Seconds)
{
    /// <summary>Algorithm bandwidth: <see cref="Bytes"/> per second, in GB/s.</summary>
    public double AlgorithmGBps => Seconds > 0 ? Bytes / Seconds / 1e9 : 0;

    /// <summary>Bus bandwidth in GB/s: what each rank's link carried per second (nccl-tests' busbw).</summary>
    public double BusGBps => AlgorithmGBps * BusFactor(Kind, Ranks);

    /// <summary>The share of the buffer each rank's link carries in a ring.</summary>
    public static double BusFactor(CollectiveKind kind, int ranks) => ranks <= 1 ? 0
        : kind == CollectiveKind.AllReduce ? 2.0 * (ranks - 1) / ranks : (ranks - 1) / (double)ranks;
}

/// <summary>
/// Times all-gather, reduce-scatter and all-reduce of bf16 buffers of several sizes over a group's collectives (NCCL on
/// GPUs, shared memory between CPU processes), as nccl-tests does: warm-up calls, then the median of timed calls, each
/// started together after a barrier. Every rank calls <see cref="Run"/> with the same arguments.
/// </summary>
public static class CollectiveBenchmark
{
    /// <summary>Times each collective at each size (bytes of the whole buffer, rounded down to a multiple of the ranks' elements).</summary>
    /// <param name="collectives">The group.</param>
    /// <param name="device">Where the buffers live: the rank's GPU for NCCL, the CPU for shared memory.</param>
    /// <param name="sizes">Whole-buffer sizes in bytes.</param>
    /// <param name="repeats">Timed calls per size (the median is kept); 2 warm-up calls come first.</param>
    public static IReadOnlyList<CollectiveTiming> Run(ICollectives collectives, Device device, IReadOnlyList<long> sizes, int repeats = 5)
    {
        ArgumentNullException.ThrowIfNull(collectives);
        ArgumentNullException.ThrowIfNull(sizes);
        if (repeats < 1) throw new ArgumentOutOfRangeException(nameof(repeats), repeats, "At least one timed call is needed.");
        int w = collectives.WorldSize;
        bool gpu = device.type == DeviceType.CUDA;
        var rows = new List<CollectiveTiming>();
        foreach (long size in sizes)
        {
            long perRank = Math.Max(1, size / 2 / w);
            long whole = perRank * w;
            using var scope = NewDisposeScope();
            Tensor big = ones([whole], ScalarType.BFloat16, device), shard = ones([perRank], ScalarType.BFloat16, device);
            nint bigPtr = Native.CudaDriver.DataOf(big), shardPtr = Native.CudaDriver.DataOf(shard);
            foreach (CollectiveKind kind in Enum.GetValues<CollectiveKind>())
            {
                Action call = kind switch
                {
                    CollectiveKind.AllGather => () => collectives.AllGather(shardPtr, bigPtr, perRank, CollectiveElement.BFloat16),
                    CollectiveKind.ReduceScatter => () => collectives.ReduceScatter(bigPtr, shardPtr, perRank, CollectiveElement.BFloat16, ReduceOperation.Sum),
                    _ => () => collectives.AllReduce(bigPtr, bigPtr, whole, CollectiveElement.BFloat16, ReduceOperation.Mean),
                };
                var times = new double[repeats];
                for (int i = -2; i < repeats; i++)
                {
                    if (gpu) cuda.synchronize();
                    collectives.Barrier();
                    if (gpu) cuda.synchronize();
                    long start = Stopwatch.GetTimestamp();
                    call();
                    if (gpu) cuda.synchronize();
                    if (i >= 0) times[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
                }
                Array.Sort(times);
                rows.Add(new CollectiveTiming(kind, whole * 2, w, times[repeats / 2]));
            }
        }
        return rows;
    }
}

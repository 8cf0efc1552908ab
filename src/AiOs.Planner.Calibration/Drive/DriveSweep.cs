using AiOs.Planner.Hardware;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Drive;

/// <summary>Which settings a drive sweep may try, how long each sample runs, and when it stops.</summary>
public sealed record SweepPlan
{
    /// <summary>How long each sample moves data (at least).</summary>
    public required TimeSpan SampleDuration { get; init; }
    /// <summary>Bytes each sample moves at least, whatever the time.</summary>
    public required Bytes SampleMinBytes { get; init; }
    /// <summary>Block sizes in walk order: 128 KiB to 8 MiB.</summary>
    public IReadOnlyList<Bytes> BlockSizes { get; init; } = [.. Enumerable.Range(0, 7).Select(i => Bytes.FromKiB(128 << i))];
    /// <summary>Queue depths in walk order.</summary>
    public IReadOnlyList<int> QueueDepths { get; init; } = [1, 2, 4, 8, 16, 32, 64];
    /// <summary>Thread counts (intra_op_parallelism) in walk order.</summary>
    public IReadOnlyList<int> Threads { get; init; } = [1, 2, 4, 8];
    /// <summary>Settings with more bytes in flight are skipped (they would need that much buffer memory).</summary>
    public Bytes MaxInFlight { get; init; } = Bytes.FromMiB(256);
    /// <summary>A step counts as an improvement only when it beats the best so far by this fraction.</summary>
    public double MinImprovement { get; init; } = 0.03;
    /// <summary>Steps without improvement before a walk stops; 0 walks every value.</summary>
    public int Patience { get; init; } = 2;

    /// <summary>Most samples the sweep can take (the early stop usually takes fewer); for progress estimates.</summary>
    public int MaxSamples => BlockSizes.Count + QueueDepths.Count - 1 + Threads.Count - 1 + 1;
}

/// <summary>
/// An adaptive drive sweep, not the full grid: walk the block size at queue depth 1 on one thread, then
/// the queue depth at the chosen block size, then the threads; each walk stops once throughput stops
/// improving (<see cref="SweepPlan.Patience"/> steps without beating the best by
/// <see cref="SweepPlan.MinImprovement"/>). One last sample at the smallest block with the deepest useful
/// queue shows the drive's request-rate limit, which the fit needs.
/// </summary>
public static class DriveSweep
{
    /// <summary>Measures one setting and returns its rate.</summary>
    public delegate Task<Bandwidth> Measure(AioSettings settings, CancellationToken ct);

    /// <summary>Runs the sweep; <paramref name="onSample"/> sees every sample as it is taken.</summary>
    public static async Task<IReadOnlyList<DriveSample>> RunAsync(Measure measure, SweepPlan plan, Action<DriveSample>? onSample, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(measure);
        ArgumentNullException.ThrowIfNull(plan);
        var samples = new List<DriveSample>();

        async Task<double?> Take(Bytes block, int depth, int threads)
        {
            var settings = new AioSettings { BlockSize = block, QueueDepth = depth, IntraOpParallelism = threads };
            if (settings.InFlight > plan.MaxInFlight) return null;
            var seen = samples.Find(s => s.BlockSize == block.Value && s.QueueDepth == depth && s.Threads == threads);
            if (seen is not null) return seen.Gbps;
            ct.ThrowIfCancellationRequested();
            var rate = await measure(settings, ct).ConfigureAwait(false);
            var sample = new DriveSample(block.Value, depth, threads, Math.Round(rate.GBps, 4));
            samples.Add(sample);
            onSample?.Invoke(sample);
            return sample.Gbps;
        }

        var blockRates = await WalkAsync(plan.BlockSizes, b => Take(b, 1, 1), plan).ConfigureAwait(false);
        // The smallest block within 10% of the best leaves the queue depth room to show its effect.
        double bestByBlock = blockRates.Max(r => r.Rate);
        var block = blockRates.Where(r => r.Rate >= 0.9 * bestByBlock).Select(r => r.Value).Min();
        var depthRates = await WalkAsync(plan.QueueDepths, d => Take(block, d, 1), plan).ConfigureAwait(false);
        int depth = depthRates.MaxBy(r => r.Rate).Value;
        var threadRates = await WalkAsync(plan.Threads, t => Take(block, depth, t), plan).ConfigureAwait(false);
        int threads = threadRates.MaxBy(r => r.Rate).Value;
        int deepest = plan.QueueDepths.Where(d => plan.BlockSizes[0] * ((long)d * threads) <= plan.MaxInFlight).DefaultIfEmpty(1).Max();
        await Take(plan.BlockSizes[0], Math.Max(depth, deepest), threads).ConfigureAwait(false);
        return samples;
    }

    /// <summary>Walks <paramref name="values"/> in order until throughput stops improving; returns the rates seen.</summary>
    internal static async Task<List<(T Value, double Rate)>> WalkAsync<T>(IReadOnlyList<T> values, Func<T, Task<double?>> take, SweepPlan plan)
    {
        var seen = new List<(T, double)>();
        double best = double.NegativeInfinity;
        int misses = 0;
        foreach (var v in values)
        {
            if (await take(v).ConfigureAwait(false) is not { } rate) continue;
            seen.Add((v, rate));
            if (rate > best * (1 + plan.MinImprovement) || best == double.NegativeInfinity)
            {
                best = Math.Max(best, rate);
                misses = 0;
            }
            else
            {
                best = Math.Max(best, rate);
                if (plan.Patience > 0 && ++misses >= plan.Patience) break;
            }
        }
        if (seen.Count == 0) throw new InvalidOperationException("Every setting of the walk was over the in-flight limit.");
        return seen;
    }
}

using System.Globalization;
using System.Text.RegularExpressions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Units;

namespace AiOs.Planner.Simulation;

/// <summary>
/// The time of one pass over host memory as the engine runs it, in parallel on the process's cores (<see cref="HostSplit"/>:
/// fixed chunks of <see cref="ChunkElements"/>, or one equal part per core). The pass takes the longer of the node's memory
/// rate over all its bytes and its busiest thread's share at one thread's rate: a pass of 19 fixed chunks on 16 cores has a
/// thread that streams two chunks.
/// </summary>
/// <param name="Aggregate">The process's share of the node's memory bandwidth (all threads).</param>
/// <param name="PerThread">What one thread streams (the profile's 1-thread memory copy).</param>
/// <param name="Threads">Cores the process's passes run on.</param>
public sealed record HostPass(Bandwidth Aggregate, Bandwidth PerThread, int Threads)
{
    /// <summary>Elements per chunk of the engine's parallel host passes (<c>AiOs.Planner.Engine.Optim.Chunked.Size</c>).</summary>
    public const int ChunkElements = 1 << 20;

    /// <summary>
    /// One thread's share of the node's memory rate when the profile does not state its 1-thread figure: a quarter (the
    /// H100 machine of issue 13 measured 10.15 of 46.2 GB/s, 0.22).
    /// </summary>
    public const double FallbackOneThreadShare = 0.25;

    /// <summary>The passes of one of <paramref name="processes"/> GPU processes of a node with <paramref name="cpu"/>.</summary>
    public static HostPass Of(CpuSpec cpu, int processes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(processes);
        Bandwidth node = cpu.MemoryBandwidth;
        Bandwidth one = OneThread(cpu.MemoryBandwidthGbps) ?? node * FallbackOneThreadShare;
        return new HostPass(node / processes, Bandwidth.Min(one, node), Math.Max(1, cpu.Cores / processes));
    }

    /// <summary>
    /// The gradient-sum pass of one of <paramref name="processes"/> GPU processes: at the profile's measured rate of that very
    /// pass on every core (<see cref="CpuSpec.HostAddGbps"/>, which holds its split and per-thread limits), shared by the
    /// node's processes; without it, <see cref="Of"/>'s memory-copy model.
    /// </summary>
    public static HostPass AddOf(CpuSpec cpu, int processes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(processes);
        if (cpu.HostAddGbps is not { } add) return Of(cpu, processes);
        Bandwidth node = Bandwidth.FromGBps(add.Value);
        return new HostPass(node / processes, node, Math.Max(1, cpu.Cores / processes));
    }

    /// <summary>
    /// The 1-thread rate a calibrated profile states in <c>cpu.memory_bandwidth_gbps</c>'s method ("best of 1 thread
    /// (10.15 GB/s) and 16 threads (46.20 GB/s)", written by the calibrator's ProfileBuilder); null when it states none.
    /// </summary>
    public static Bandwidth? OneThread(Figure memoryBandwidth)
    {
        if (memoryBandwidth.Provenance?.Method is not { } method) return null;
        Match m = OneThreadPattern.Match(method);
        return m.Success && double.TryParse(m.Groups[1].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out double gbps) && gbps > 0
            ? Bandwidth.FromGBps(gbps) : null;
    }

    private static readonly Regex OneThreadPattern = new(@"\b1 thread \(([0-9]+(?:\.[0-9]+)?) GB/s\)", RegexOptions.CultureInvariant);

    /// <summary>
    /// A pass over <paramref name="elements"/> that moves <paramref name="bytesPerElement"/> bytes of memory traffic per
    /// element: bound by the process's share of the node's memory rate, or by its busiest thread, which streams its share
    /// (<paramref name="split"/>) at one thread's rate, whichever is longer.
    /// </summary>
    public SimDuration Time(long elements, int bytesPerElement, HostSplit split = HostSplit.FixedChunks)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(elements);
        double shared = (double)elements * bytesPerElement / Aggregate.BytesPerSecond;
        double busiest = (double)BusiestThread(elements, split) * bytesPerElement / PerThread.BytesPerSecond;
        return SimDuration.FromSeconds(Math.Max(shared, busiest));
    }

    /// <summary>Elements the busiest thread streams.</summary>
    private long BusiestThread(long elements, HostSplit split)
    {
        if (split == HostSplit.FixedChunks)
        {
            // ⌈chunks / threads⌉ chunks one after another.
            long chunks = (elements + ChunkElements - 1) / ChunkElements;
            return Math.Min(elements, (chunks + Threads - 1) / Threads * ChunkElements);
        }
        long parts = Math.Clamp(elements / EvenMinPart, 1, Threads);
        return (elements + parts - 1) / parts;
    }

    /// <summary>Fewest elements per part of an even split (<c>AiOs.Planner.Engine.Optim.SpanMath.MinPart</c>): shorter passes run on one thread.</summary>
    public const int EvenMinPart = 1 << 18;
}

/// <summary>How the engine splits a host pass over its cores.</summary>
public enum HostSplit
{
    /// <summary>Fixed chunks of <see cref="HostPass.ChunkElements"/> (reductions, whose order must not depend on the core count: Σg²).</summary>
    FixedChunks,
    /// <summary>One equal part per core (element-wise work: a later micro-batch's gradient add).</summary>
    Even,
}

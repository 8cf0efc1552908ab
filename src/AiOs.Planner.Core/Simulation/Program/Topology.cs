using AiOs.Planner.Hardware;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Simulation.Program;

/// <summary>
/// How many GPU processes take part in a step and how they share nodes, resolved once from the settings
/// (<c>--gpus</c>, <c>--nodes</c>) and the machine's profile. A CPU-only machine trains on one device: both
/// figures are at least 1.
/// </summary>
public sealed record Topology(int GpusPerNode, int Nodes)
{
    /// <summary>Data-parallel ranks: GPUs per node × nodes.</summary>
    public int Ranks => GpusPerNode * Nodes;

    /// <summary>The topology the settings ask for, falling back to the profile's figures.</summary>
    public static Topology Of(TrainingSettings settings, HardwareProfile hardware) =>
        new(Math.Max(1, settings.GpusPerNode ?? hardware.GpusPerNode), Math.Max(1, settings.Nodes ?? hardware.Nodes));

    /// <summary>One rank's share of <paramref name="elements"/> (rounded up, as ZeRO pads partitions).</summary>
    public long Share(long elements) => ShareOf(elements, Ranks);

    /// <summary>One of <paramref name="ranks"/> ranks' share of <paramref name="elements"/>, rounded up (the engine's <c>ShardLayout</c> pads the same way).</summary>
    public static long ShareOf(long elements, int ranks) => (elements + ranks - 1) / ranks;
}

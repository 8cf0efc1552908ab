using AiOs.Planner.Models;

namespace AiOs.Planner.Settings;

/// <summary>
/// The one rule for <see cref="TrainingSettings.MaxInCpu"/> (DeepSpeed's <c>offload_param.max_in_cpu</c>) in the bundled
/// engine: with parameters on NVMe, the units the step needs FIRST keep their working parameters in host RAM, as many
/// whole units as max_in_cpu elements hold, walking forward from the first; every other unit is read from its swap file.
/// The planner, the step program and the engine all call this. DeepSpeed's swapper is reported not to act on the
/// setting (deepspeedai/DeepSpeed issue 4221), so its program shape ignores it.
/// </summary>
/// <remarks>
/// Why the first ones: a unit read from NVMe early in forward has no compute before it to hide the read behind (the
/// step starts with the outer block, then layer 0, 1, …), while later units' reads overlap the layers computing ahead of
/// them. Keeping the first units in RAM removes the exposed head of the step first. A prefix also makes the split
/// monotone: a larger max_in_cpu keeps a superset of units in RAM.
/// </remarks>
public static class ParameterPlacement
{
    /// <summary>The rule itself: the longest prefix of <paramref name="elementsInFirstUseOrder"/> whose elements sum to at most <paramref name="maxInCpu"/>.</summary>
    public static bool[] InRam(IReadOnlyList<long> elementsInFirstUseOrder, long maxInCpu)
    {
        ArgumentNullException.ThrowIfNull(elementsInFirstUseOrder);
        var inRam = new bool[elementsInFirstUseOrder.Count];
        long left = Math.Max(0, maxInCpu);
        for (int i = 0; i < inRam.Length; i++)
        {
            long elements = elementsInFirstUseOrder[i];
            if (elements > left) break;
            inRam[i] = true;
            left -= elements;
        }
        return inRam;
    }

    /// <summary>
    /// For each engine unit (index 0…L−1 the decoder layers, L the outer block), whether its working parameters stay in
    /// CPU RAM: the rule over the units in the order the step first needs them (the outer block, then layers 0…L−1), each
    /// counted as one rank's shard of <paramref name="ranks"/> (ZeRO-3 pads each unit to a multiple of the ranks). All false
    /// unless parameters are offloaded to NVMe.
    /// </summary>
    public static bool[] EngineUnitsInRam(ModelSpec m, TrainingSettings settings, int ranks)
    {
        ArgumentNullException.ThrowIfNull(m);
        ArgumentNullException.ThrowIfNull(settings);
        var kept = new bool[m.NumLayers + 1];
        if (settings.ParamOffload != OffloadTier.Nvme) return kept;
        bool[] inOrder = InRam(EngineFirstUseOrder(m, ranks), settings.MaxInCpu);
        kept[m.NumLayers] = inOrder[0];
        for (int i = 0; i < m.NumLayers; i++) kept[i] = inOrder[i + 1];
        return kept;
    }

    /// <summary>One rank's elements of each engine unit in the order the step first needs them: the outer block, then layers 0…L−1.</summary>
    public static IReadOnlyList<long> EngineFirstUseOrder(ModelSpec m, int ranks)
    {
        ArgumentNullException.ThrowIfNull(m);
        return [Share(Memory.EngineMemory.OuterElements(m), ranks), .. Enumerable.Repeat(Share(m.LayerParameters, ranks), m.NumLayers)];
    }

    /// <summary>
    /// Elements of one rank's parameters kept in RAM and of those on NVMe (shards, padding included) under the rule; with
    /// parameters not on NVMe, (0, 0).
    /// </summary>
    public static (long Ram, long Nvme) EngineSplit(ModelSpec m, TrainingSettings settings, int ranks)
    {
        ArgumentNullException.ThrowIfNull(m);
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.ParamOffload != OffloadTier.Nvme) return (0, 0);
        bool[] kept = EngineUnitsInRam(m, settings, ranks);
        long ram = 0, nvme = 0;
        for (int u = 0; u < kept.Length; u++)
        {
            long elements = u == m.NumLayers ? Share(Memory.EngineMemory.OuterElements(m), ranks) : Share(m.LayerParameters, ranks);
            if (kept[u]) ram += elements;
            else nvme += elements;
        }
        return (ram, nvme);
    }

    /// <summary>One rank's share of a unit of <paramref name="elements"/> (rounded up, as ZeRO pads partitions).</summary>
    private static long Share(long elements, int ranks) => Simulation.Program.Topology.ShareOf(elements, Math.Max(1, ranks));
}

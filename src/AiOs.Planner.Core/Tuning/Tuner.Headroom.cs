using System.Globalization;
using AiOs.Planner.Hardware;
using AiOs.Planner.Planning;
using AiOs.Planner.Units;

namespace AiOs.Planner.Tuning;

/// <summary>
/// Memory headroom: the memory model has under-predicted a measured peak by up to 7% (docs/memory-model.md), so a
/// plan at 100% of a tier is not a plan that runs. The tuner accepts a candidate only below (1 − headroom) of each
/// tier and warns when its choice sits above 1 − 2 × headroom.
/// </summary>
public static partial class Tuner
{
    /// <summary>Each tier a candidate uses with its capacity: GPU (per GPU), host RAM, pinned host RAM (its own limit), NVMe (per node).</summary>
    internal static IEnumerable<(string Tier, Bytes Used, Bytes Capacity)> TierUses(Candidate c, HardwareProfile hw)
    {
        if (hw.HasGpu) yield return ("GPU memory", c.GpuPeak, hw.Gpu!.Memory);
        yield return ("host RAM", c.HostPeak, hw.Cpu.Ram);
        yield return ("pinned host RAM", c.PinnedPeak, hw.Cpu.Ram * TrainingPlanner.PinnedRamLimit);
        var nvme = hw.Drives.Aggregate(Bytes.Zero, (sum, d) => sum + d.Capacity);
        if (c.NvmePeak.Value > 0 && nvme.Value > 0) yield return ("NVMe", c.NvmePeak, nvme);
    }

    /// <summary>Tiers above (1 − headroom) of capacity, as problems naming the flag; empty when the candidate keeps the headroom.</summary>
    internal static List<string> HeadroomProblems(Candidate c, HardwareProfile hw, double headroom)
    {
        var problems = new List<string>();
        if (headroom <= 0) return problems;
        foreach (var (tier, used, capacity) in TierUses(c, hw))
        {
            var limit = capacity * (1 - headroom);
            if (used > limit)
                problems.Add(string.Create(CultureInfo.InvariantCulture,
                    $"{tier}: needs {used} of {capacity} ({used / capacity:P0}), above the {1 - headroom:P0} the {headroom:P0} memory headroom allows ({limit}); lower --memory-headroom to accept it."));
        }
        return problems;
    }

    /// <summary>Tiers a candidate fills above 1 − 2 × headroom of capacity, in words; empty when none.</summary>
    internal static List<string> NearLimits(string label, Candidate c, HardwareProfile hw, double headroom)
    {
        var lines = new List<string>();
        double near = 1 - 2 * headroom;
        foreach (var (tier, used, capacity) in TierUses(c, hw))
        {
            if (capacity.Value <= 0 || used / capacity <= near) continue;
            lines.Add(string.Create(CultureInfo.InvariantCulture,
                $"{label} is near a limit: {tier} {used} of {capacity} ({used / capacity:P0}, above {near:P0} = 1 − 2 × the {headroom:P0} headroom). The memory model has under-predicted peaks by up to 7%: watch the first steps, or raise --memory-headroom to leave more."));
        }
        return lines;
    }
}

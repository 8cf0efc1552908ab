using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Execution;

/// <summary>One item of the engine's host-memory need, and the setting that shrinks it.</summary>
/// <param name="What">What the memory holds.</param>
/// <param name="Size">How much.</param>
/// <param name="Remedy">The flag that lowers it.</param>
public sealed record HostMemoryItem(string What, Bytes Size, string Remedy);

/// <summary>
/// The host RAM the engine needs with given settings, item by item, so a run that cannot fit is refused before it
/// starts, naming the setting to change. One definition with the planner's <c>aios</c> executor: the items are
/// <see cref="EngineMemory.HostNeed"/>'s (model states, buffers, on a CPU device its working set, the runtime and the
/// fitted residual), so what the planner calls feasible and what the engine accepts cannot drift apart.
/// </summary>
public static class HostMemoryEstimate
{
    /// <summary>Each item for <paramref name="spec"/> and <paramref name="s"/> on a CPU device, largest first.</summary>
    public static IReadOnlyList<HostMemoryItem> Items(ModelSpec spec, TrainingSettings s) => Items(spec, s, gpu: false);

    /// <summary>Each item for <paramref name="spec"/> and <paramref name="s"/>, largest first; <paramref name="gpu"/>: the device is a GPU.</summary>
    public static IReadOnlyList<HostMemoryItem> Items(ModelSpec spec, TrainingSettings s, bool gpu) =>
        EngineMemory.HostNeed(spec, s, gpu).Select(i => new HostMemoryItem(i.Item.Name, i.Item.Bytes, i.Remedy)).OrderByDescending(i => i.Size).ToArray();

    /// <summary>The sum of <see cref="Items(ModelSpec, TrainingSettings)"/> (CPU device).</summary>
    public static Bytes Total(ModelSpec spec, TrainingSettings s) => Total(spec, s, gpu: false);

    /// <summary>The sum of <see cref="Items(ModelSpec, TrainingSettings, bool)"/>: one process's need (with several ranks, one rank's).</summary>
    public static Bytes Total(ModelSpec spec, TrainingSettings s, bool gpu) => Items(spec, s, gpu).Aggregate(Bytes.Zero, (a, i) => a + i.Size);

    /// <summary>What every process of the run needs together: <see cref="Total(ModelSpec, TrainingSettings, bool)"/> × the ranks on this host.</summary>
    public static Bytes AllRanks(ModelSpec spec, TrainingSettings s, bool gpu) => Total(spec, s, gpu) * EngineMemory.Ranks(s);

    /// <summary>MemAvailable from <c>/proc/meminfo</c>, or null where it cannot be read.</summary>
    public static Bytes? Available()
    {
        const string meminfo = "/proc/meminfo";
        return File.Exists(meminfo) ? Measurement.HostMemory.MeminfoAvailable(File.ReadAllText(meminfo)) : null;
    }
}

using AiOs.Planner.Engine.Metrics;
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
/// The host RAM the engine allocates for model states and buffers with given settings on a CPU device
/// (activations and the runtime itself come on top), so a run that cannot fit is refused before it starts,
/// naming the setting to change.
/// </summary>
public static class HostMemoryEstimate
{
    /// <summary>Each allocation the engine makes for <paramref name="spec"/> and <paramref name="s"/>, largest first.</summary>
    public static IReadOnlyList<HostMemoryItem> Items(ModelSpec spec, TrainingSettings s)
    {
        int eb = s.ParamBytes;
        long layer = spec.LayerParameters, outer = spec.EmbeddingParameters + spec.HeadParameters, total = spec.TotalParameters;
        long largest = Math.Max(layer, outer);
        var items = new List<HostMemoryItem>();
        StorageTier parameters = EngineSettings.Tier(s.ParamOffload);
        if (parameters == StorageTier.Device)
        {
            items.Add(new("working parameters on the (CPU) device", Bytes.OfElements(total, eb), "--offload-params nvme"));
        }
        else
        {
            int slots = Math.Clamp(1 + Math.Max(0, s.PrefetchDepth), 1, Math.Max(1, spec.NumLayers));
            items.Add(new("device slots for fetched units", Bytes.OfElements(slots * layer + outer, eb), "--prefetch-depth"));
            if (parameters == StorageTier.Cpu)
                items.Add(new("working parameters in CPU RAM", Bytes.OfElements(total, eb), "--offload-params nvme"));
            else
                items.Add(new("parameter staging buffers", Bytes.OfElements(Math.Max(1, s.BufferCount) * layer + outer, eb), "--buffer-count"));
        }
        if (EngineSettings.Tier(s.OptimizerOffload) == StorageTier.Nvme && Memory.EngineMemory.OptimizerSplit(spec, s).Ram is > 0 and var kept)
            items.Add(new("optimizer sub-groups kept in RAM by the budget", Bytes.OfElements(3 * kept, 4), "--optimizer-ram-budget"));
        if (EngineSettings.Tier(s.OptimizerOffload) == StorageTier.Nvme)
            items.Add(new("optimizer sub-group buffers", Bytes.OfElements(Math.Max(1, s.OptimizerBufferCount) * 4 * Math.Min(s.SubGroupSize, largest), 4),
                "--sub-group-size or --optimizer-buffer-count"));
        else
            items.Add(new("fp32 master weights and Adam moments", Bytes.OfElements(3 * total, 4), "--offload-optimizer nvme"));
        if (EngineSettings.Tier(s.EffectiveGradientOffload) == StorageTier.Nvme)
            items.Add(new("one unit's fp32 gradient", Bytes.OfElements(largest, 4), "--offload-gradients nvme"));
        else
            items.Add(new("fp32 gradients", Bytes.OfElements(total, 4), "--offload-gradients nvme"));
        return items.OrderByDescending(i => i.Size).ToArray();
    }

    /// <summary>The sum of <see cref="Items"/>.</summary>
    public static Bytes Total(ModelSpec spec, TrainingSettings s) => Items(spec, s).Aggregate(Bytes.Zero, (a, i) => a + i.Size);

    /// <summary>MemAvailable from <c>/proc/meminfo</c>, or null where it cannot be read.</summary>
    public static Bytes? Available()
    {
        const string meminfo = "/proc/meminfo";
        if (!File.Exists(meminfo)) return null;
        foreach (string line in File.ReadLines(meminfo))
        {
            if (!line.StartsWith("MemAvailable:", StringComparison.Ordinal)) continue;
            string[] parts = line["MemAvailable:".Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return long.TryParse(parts[0], out long kib) ? Bytes.FromKiB(kib) : null;
        }
        return null;
    }
}

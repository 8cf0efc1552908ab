using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Memory;

/// <summary>
/// Memory-centric tiling (ZeRO-Infinity, Rajbhandari et al. 2021, §5.1.3): a linear layer too wide to gather at once is
/// split into T tiles fetched and computed one at a time, so the working set follows the tile. The planner suggests the
/// smallest T that makes GPU memory fit; the settings rules of the offload features that only DeepSpeed executes live here too.
/// </summary>
public static class MemoryCentricTiling
{
    /// <summary>The largest tiling factor the planner tries or accepts.</summary>
    public const int MaxFactor = 1024;

    /// <summary>
    /// The smallest tiling factor at which <paramref name="s"/> fits GPU memory on <paramref name="hw"/> (DeepSpeed's
    /// program: the bundled engine does not tile), or null when none up to <see cref="MaxFactor"/> does — tiling only
    /// shrinks the gathered matrices, not activations or what the embedding needs.
    /// </summary>
    public static int? SmallestFittingFactor(ModelSpec m, HardwareProfile hw, TrainingSettings s)
    {
        ArgumentNullException.ThrowIfNull(m);
        ArgumentNullException.ThrowIfNull(hw);
        ArgumentNullException.ThrowIfNull(s);
        if (!hw.HasGpu || !s.PartitionsParameters || s.Executor != ExecutorKind.DeepSpeed) return null;
        bool Fits(int t) => MemoryPlanner.Plan(m, hw, s with { TilingFactor = t }).Gpu.Fits;
        if (!Fits(MaxFactor)) return null;
        // GPU memory never grows with T (the tile only shrinks), so the smallest fitting factor is found by bisection.
        int lo = 1, hi = MaxFactor;
        while (lo < hi)
        {
            int mid = lo + (hi - lo) / 2;
            if (Fits(mid)) hi = mid; else lo = mid + 1;
        }
        return lo;
    }

    /// <summary>The advice line for a plan that does not fit GPU memory, when tiling would make it fit; null otherwise.</summary>
    public static string? Advice(ModelSpec m, HardwareProfile hw, TrainingSettings s) =>
        s.TilingFactor < MaxFactor && SmallestFittingFactor(m, hw, s) is { } t && t > s.TilingFactor
            ? $"--tiling-factor {t} (memory-centric tiling: each layer's weight matrices in {t} tiles, so the largest gathered matrix fits)"
            : null;

    /// <summary>
    /// Why the bundled engine (<c>aios train</c>) refuses <paramref name="s"/>, or null: it gathers whole units, so tiling
    /// is planned for DeepSpeed only; CPU checkpoints are executed by its layer-by-layer trainer (anything offloaded),
    /// not by its resident one.
    /// </summary>
    public static string? EngineRefusal(TrainingSettings s)
    {
        ArgumentNullException.ThrowIfNull(s);
        if (s.ActivationOffload == OffloadTier.Nvme)
            return "--offload-activations nvme: activation checkpoints go to cpu or stay on the device (none); DeepSpeed has no NVMe placement for them.";
        if (ResidentRefusesCheckpointOffload(s))
            return $"--offload-activations cpu: {ResidentReason}; add --offload-params cpu (or --offload-optimizer cpu) to run the layer-by-layer trainer, which does, or drop --offload-activations.";
        if (s.TilingFactor > 1)
            return $"--tiling-factor {s.TilingFactor}: memory-centric tiling is not executed by the bundled engine yet; plan it with --executor deepspeed (aios plan/ds-config) and run it on DeepSpeed.";
        return null;
    }

    /// <summary>Problems with the tiling, activation-offload and ZeRO-3 fetch settings, each naming its flag and the fix.</summary>
    public static IReadOnlyList<SettingsProblem> Problems(TrainingSettings s)
    {
        ArgumentNullException.ThrowIfNull(s);
        var problems = new List<SettingsProblem>();
        void Add(string flag, string message) => problems.Add(new SettingsProblem(flag, message));
        if (s.TilingFactor is < 1 or > MaxFactor)
            Add("--tiling-factor", $"tiling factor must be 1..{MaxFactor} (found {s.TilingFactor}); 1 means no tiling");
        else if (s.TilingFactor > 1 && s.Executor == ExecutorKind.Aios)
            Add("--tiling-factor", "memory-centric tiling is not executed by the bundled engine yet; plan it with --executor deepspeed");
        if (s.ActivationOffload == OffloadTier.Nvme)
            Add("--offload-activations", "activation checkpoints go to cpu or stay on the device (none); DeepSpeed has no NVMe placement for them");
        // Without checkpointing there are no checkpoints to move: the setting does nothing (the CLI turns checkpointing on
        // with it), and is not refused, so a search that tries checkpointing off keeps its other candidates.
        if (s.Executor == ExecutorKind.Aios && ResidentRefusesCheckpointOffload(s))
            Add("--offload-activations", $"{ResidentReason}; add --offload-params cpu (or --offload-optimizer cpu), or plan it with --executor deepspeed");
        if (s.PrefetchBucketSize is < 0)
            Add("--prefetch-bucket-size", $"stage3_prefetch_bucket_size must be 0 or more elements (found {s.PrefetchBucketSize})");
        if (s.MaxLiveParameters < 1)
            Add("--max-live-parameters", $"stage3_max_live_parameters must be at least 1 element (found {s.MaxLiveParameters})");
        if (s.ParamPersistenceThreshold is < 0)
            Add("--param-persistence-threshold", $"stage3_param_persistence_threshold must be 0 or more elements (found {s.ParamPersistenceThreshold})");
        return problems;
    }

    /// <summary>
    /// Whether <paramref name="s"/> asks the engine's resident trainer (nothing offloaded) to keep checkpoints in CPU RAM:
    /// it keeps every layer input on the device; only the layer-by-layer trainer copies them out and back.
    /// </summary>
    private static bool ResidentRefusesCheckpointOffload(TrainingSettings s) =>
        s.ActivationOffload == OffloadTier.Cpu && s.ActivationCheckpointing && EngineMemory.IsResident(s);

    private const string ResidentReason = "with nothing offloaded the engine's resident trainer keeps activation checkpoints on the device";
}

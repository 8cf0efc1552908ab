using System.Globalization;
using AiOs.Planner.Memory;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Tuning;

/// <summary>Plain sentences about tiling and checkpoints in CPU RAM: when the tuner chose them, and why.</summary>
public static partial class Tuner
{
    /// <summary>
    /// Why <paramref name="c"/> tiles its layers or keeps activation checkpoints in CPU RAM: what GPU memory the plan needs
    /// without it, what with it, and whether the user fixed it. Empty when it does neither.
    /// </summary>
    private static IEnumerable<string> ExplainMemoryFallbacks(TuneRequest r, Candidate c, string label)
    {
        var s = c.Settings;
        var hw = r.Hardware;
        if (!hw.HasGpu) yield break;
        string I(FormattableString f) => f.ToString(CultureInfo.InvariantCulture);
        var card = hw.Gpu!.Memory;
        var limit = card * (1 - r.MemoryHeadroom);
        if (s.TilingFactor > 1)
        {
            var untiled = MemoryPlanner.Plan(r.Model, hw, s with { TilingFactor = 1 }).Gpu.Peak;
            yield return TilingFixed(r)
                ? I($"Memory-centric tiling, --tiling-factor {s.TilingFactor} as given (fixed, not searched): {label} needs {c.GpuPeak} per GPU; untiled it would need {untiled}.")
                : I($"Memory-centric tiling (--tiling-factor {s.TilingFactor}), chosen because untiled {label} needs {untiled} per GPU, above the {limit} the headroom leaves of {card}; with each layer's weight matrices in {s.TilingFactor} tiles it needs {c.GpuPeak}.")
                  + (s.Executor == ExecutorKind.DeepSpeed ? " DeepSpeed tiles in the model code (deepspeed.zero.TiledLinear); ds_config.json has no key for it." : "");
        }
        if (s.ActivationOffload == OffloadTier.Cpu && s.ActivationCheckpointing)
        {
            var plan = MemoryPlanner.Plan(r.Model, hw, s);
            var onDevice = MemoryPlanner.Plan(r.Model, hw, s with { ActivationOffload = OffloadTier.None }).Gpu.Peak;
            var inRam = plan.CpuPageable.Of("activation checkpoints");
            yield return ActivationOffloadFixed(r)
                ? I($"Activation checkpoints in CPU RAM, --offload-activations cpu as given (fixed, not searched): {label} needs {c.GpuPeak} per GPU and {inRam} of host RAM for them; on the device it would need {onDevice} per GPU.")
                : I($"Activation checkpoints in CPU RAM (--offload-activations cpu, cpu_checkpointing in ds_config.json), chosen because with checkpoints on the device {label} needs {onDevice} per GPU, above the {limit} the headroom leaves of {card}; in CPU RAM it needs {c.GpuPeak} per GPU and {inRam} of host RAM, each checkpoint copied over PCIe.");
        }
    }

    /// <summary>When nothing fits: the fallbacks the executor refuses, so the user knows they were not tried.</summary>
    private static IEnumerable<string> FallbacksNotTried(TuneRequest r)
    {
        if (!r.Hardware.HasGpu) yield break;
        var simplest = Simplest(r) with { ActivationCheckpointing = true };
        var refused = new List<string>();
        void WhyNot(TrainingSettings s)
        {
            if (ExecutorRuns(s)) return;
            var problems = MemoryCentricTiling.Problems(s);
            if (problems.Count > 0) refused.AddRange(problems.Select(p => p.ToString()));
            else if (MemoryCentricTiling.EngineRefusal(s) is { } refusal) refused.Add(refusal.TrimEnd('.'));
        }
        if (!TilingFixed(r)) WhyNot(simplest with { TilingFactor = 2 });
        if (!ActivationOffloadFixed(r)) WhyNot(simplest with { ActivationOffload = OffloadTier.Cpu });
        if (refused.Count > 0)
            yield return $"Not tried, as the executor does not run them: {string.Join("; ", refused)}.";
    }
}

using System.Globalization;
using AiOs.Planner.Optim;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Tuning;

/// <summary>Plain sentences about the tuner's choice.</summary>
public static partial class Tuner
{
    private static List<string> Explain(TuneRequest r, TuneResult result)
    {
        var lines = new List<string>();
        string I(FormattableString f) => f.ToString(CultureInfo.InvariantCulture);
        var best = result.Best;
        string evaluated = I($"Evaluated {result.Evaluated:N0} candidates ({result.Simulated:N0} simulated, {result.FeasibleCount:N0} fit) in {result.Elapsed.TotalSeconds:0.0} s.");
        if (best is null)
        {
            string batch = r.GlobalBatch is { } g ? I($" at a global batch of {g} sequences (--global-batch)") : "";
            lines.Add(I($"Nothing fits {r.Model.Name} on {r.Hardware.Name}{batch}: every candidate overflows a tier once {r.MemoryHeadroom:P0} of each is kept free (--memory-headroom)."));
            lines.Add("Add GPUs or nodes, host RAM, or an NVMe drive (and --nvme-offload-path), then tune again.");
            lines.AddRange(FallbacksNotTried(r));
            lines.Add(evaluated);
            return lines;
        }
        var s = best.Settings;
        lines.Add(I($"Best: {Describe(s)}: {best.TokensPerSecond:N0} tokens/s, {best.StepTime} per step; the bottleneck is {best.Bottleneck}."));
        int world = World(s, r.Hardware);
        string how = r.GlobalBatch is not null
            ? "fixed by --global-batch"
            : I($"chosen by the tuner (accumulation up to --max-grad-accumulation {r.MaxGradAccumulation}); fix it with --global-batch N");
        lines.Add(I($"Global batch: {GlobalBatch(best)} (micro-batch {s.MicroBatch} × accumulation {s.GradAccumulation} × {world} GPU(s)), {how}."));
        var hw = r.Hardware;
        string kept = I($"{r.MemoryHeadroom:P0} of each tier kept free (--memory-headroom)");
        if (hw.HasGpu) lines.Add(I($"Memory: GPU {Use(best.GpuPeak, hw.Gpu!.Memory)}, host RAM {Use(best.HostPeak, hw.Cpu.Ram)} (pinned {best.PinnedPeak}), NVMe {Use(best.NvmePeak, hw.Drives.Aggregate(Bytes.Zero, (a, d) => a + d.Capacity))}; {kept}."));
        else lines.Add(I($"Memory: host RAM {Use(best.HostPeak, hw.Cpu.Ram)} (pinned {best.PinnedPeak}), NVMe {best.NvmePeak}; {kept}."));
        lines.AddRange(ExplainMemoryFallbacks(r, best, "the best"));
        lines.AddRange(result.NearLimits);
        foreach (var alt in result.Alternatives.Take(2))
        {
            double slower = best.TokensPerSecond > 0 ? 1 - alt.TokensPerSecond / best.TokensPerSecond : 0;
            // The one alternative that may be faster: the best's structure with CUDA graphs, short of the margin they must win by.
            string pace = slower < 0
                ? I($"{-slower:P0} faster, short of the {Planning.TrainingPlanner.CudaGraphsNoteGain:P0} the graphs must win by for their device memory")
                : I($"{slower:P0} slower");
            lines.Add(I($"Next: {Describe(alt.Settings)}: {pace} ({alt.Bottleneck}-bound), host RAM {alt.HostPeak}, {GlobalBatch(alt)}."));
        }
        lines.AddRange(ExplainStateFormat(r, result));
        var ds = result.DeepSpeedBest;
        if (ds is null)
            lines.Add("DeepSpeed can run none of the candidates that fit: only the aios engine's overlapped schedule fits, so there is no ds_config.json to write.");
        else if (ds != best)
        {
            string why = best.Settings.CudaGraphs && best.Settings.Schedule == StepSchedule.DeepSpeed
                ? "DeepSpeed replays no CUDA graphs" : "DeepSpeed has no overlapped schedule";
            lines.Add(I($"{why}, so for DeepSpeed (ds_config.json) the best it can run is ranked separately: {Describe(ds.Settings)}: {ds.TokensPerSecond:N0} tokens/s ({ds.TokensPerSecond / best.TokensPerSecond:P0} of the best), {GlobalBatch(ds)}."));
            if (ds.Settings.TilingFactor != s.TilingFactor || ds.Settings.ActivationOffload != s.ActivationOffload)
                lines.AddRange(ExplainMemoryFallbacks(r, ds, "the DeepSpeed plan"));
        }
        else
            lines.Add("DeepSpeed can run the best as it is (ds_config.json).");
        if (result.Baselines.TryGetValue("deepspeed_defaults", out var defaults) && ds is not null)
        {
            if (defaults is { Feasible: true } && defaults.TokensPerSecond > 0)
                lines.Add(I($"The DeepSpeed structure with DeepSpeed's default knobs: {defaults.TokensPerSecond:N0} tokens/s (the tuned knobs are {ds.TokensPerSecond / defaults.TokensPerSecond:0.00}× as fast)."));
            else
                lines.Add("The DeepSpeed structure with DeepSpeed's default knobs does not fit: " + string.Join(" ", defaults.Problems));
        }
        if (s.UsesNvme && s.NvmePath == PlaceholderNvmePath || ds is not null && ds.Settings.UsesNvme && ds.Settings.NvmePath == PlaceholderNvmePath)
            lines.Add("It offloads to NVMe: pass --nvme-offload-path with a folder on the drive (check it with `aios check-nvme`).");
        lines.Add(evaluated);
        return lines;
    }

    /// <summary>Why the best keeps its optimizer state in the format it does, when the search could choose (--allow-8bit-optimizer).</summary>
    private static IEnumerable<string> ExplainStateFormat(TuneRequest r, TuneResult result)
    {
        var best = result.Best!;
        if (!r.AllowEightBitOptimizer || best.Settings.OptimizerOffload == OffloadTier.None) yield break;
        var s = best.Settings;
        var other = s with { OptimizerState = s.OptimizerState == Optim.OptimizerStateFormat.Fp32 ? Optim.OptimizerStateFormat.EightBit : Optim.OptimizerStateFormat.Fp32 };
        var twin = result.ParetoFront.Concat(result.Alternatives).FirstOrDefault(c => c.Settings == other);
        string versus = twin is { TokensPerSecond: > 0 } ? string.Create(CultureInfo.InvariantCulture, $" (the same plan in {other.OptimizerState.Name()}: {twin.TokensPerSecond:N0} tokens/s)") : "";
        if (s.OptimizerState == Optim.OptimizerStateFormat.EightBit)
            yield return $"8-bit optimizer state (--allow-8bit-optimizer): the moments are block-wise 8-bit, about half the state's bytes in RAM and on NVMe, which pays because the step is {best.Bottleneck}-bound{versus}; the CPU update runs at about {r.Hardware.Cpu.Adam8Rate.Value / r.Hardware.Cpu.AdamRateFor(Optim.OptimizerStateFormat.Fp32, Simulation.StepCosts.EngineUpdatePass(s with { OptimizerState = Optim.OptimizerStateFormat.Fp32 })):0.00}× the fp32-state rate, and 8-bit moments can cost a little quality (docs/user-guide.md). DeepSpeed keeps fp32 state, so a ds_config.json comes from an fp32 plan.";
        else
            yield return $"fp32 optimizer state: 8-bit (--allow-8bit-optimizer) was searched but does not pay here: the step is {best.Bottleneck}-bound and the 8-bit CPU update is slower{versus}.";
    }

    /// <summary>A candidate's global batch in words: sequences and tokens per optimizer step.</summary>
    public static string GlobalBatch(Candidate c) =>
        string.Create(CultureInfo.InvariantCulture, $"{c.SequencesPerStep:N0} sequences ({c.TokensPerStep:N0} tokens) per optimizer step");

    /// <summary>A candidate's structure in words; <paramref name="hasGpu"/> false: nothing offloaded means host RAM, not a GPU.</summary>
    public static string Describe(TrainingSettings s, bool hasGpu = true)
    {
        string Tier(OffloadTier t) => t switch { OffloadTier.None => hasGpu ? "GPU" : "the compute device (host RAM, no GPU)", OffloadTier.Cpu => "CPU", _ => "NVMe" };
        return $"ZeRO {SettingsRules.Name(s.ZeroStage)}, parameters on {Tier(s.ParamOffload)}, optimizer on {Tier(s.OptimizerOffload)}, " +
               $"micro-batch {s.MicroBatch} × {s.GradAccumulation}{(s.ActivationCheckpointing ? ", checkpointing" : "")}" +
               (s.ActivationCheckpointing && s.ActivationOffload == OffloadTier.Cpu ? " (checkpoints in CPU RAM)" : "") +
               (s.TilingFactor > 1 ? $", layer matrices in {s.TilingFactor} tiles" : "") +
               (s.OptimizerOffload != OffloadTier.None ? $", {s.Schedule switch { StepSchedule.Overlapped => "overlapped", StepSchedule.Delayed => "delayed (one-step stale)", _ => "DeepSpeed" }} schedule" : "") +
               (s.OptimizerState == Optim.OptimizerStateFormat.EightBit ? ", 8-bit optimizer state" : "") +
               (s.CudaGraphs ? ", layers replayed from CUDA graphs" : "") +
               (s.OptimizerOffload == OffloadTier.Nvme && s.OptimizerRamBudget is { Value: > 0 } budget ? $", optimizer RAM budget {budget} (the sub-groups updated last stay in RAM)" : "");
    }

    private static string Use(Bytes used, Bytes capacity) =>
        capacity.Value > 0 ? string.Create(CultureInfo.InvariantCulture, $"{used} of {capacity} ({used / capacity:P0})") : used.ToString();
}

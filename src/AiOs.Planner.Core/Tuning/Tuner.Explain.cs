using System.Globalization;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Tuning;

/// <summary>Plain sentences about the tuner's choice.</summary>
public static partial class Tuner
{
    private static List<string> Explain(TuneRequest r, Candidate? best, IReadOnlyList<Candidate> alternatives, Candidate? defaults,
        int evaluated, int simulated, int feasible, TimeSpan elapsed)
    {
        var lines = new List<string>();
        string I(FormattableString f) => f.ToString(CultureInfo.InvariantCulture);
        if (best is null)
        {
            lines.Add(I($"Nothing fits {r.Model.Name} on {r.Hardware.Name}: every candidate overflows a tier."));
            lines.Add("Add GPUs or nodes, host RAM, or an NVMe drive (and --nvme-offload-path), then tune again.");
            lines.Add(I($"Evaluated {evaluated:N0} candidates ({simulated:N0} simulated) in {elapsed.TotalSeconds:0.0} s."));
            return lines;
        }
        var s = best.Settings;
        lines.Add(I($"Best: {Describe(s)}: {best.TokensPerSecond:N0} tokens/s, {best.StepTime} per step; the bottleneck is {best.Bottleneck}."));
        var hw = r.Hardware;
        if (hw.HasGpu) lines.Add(I($"Headroom: GPU {Use(best.GpuPeak, hw.Gpu!.Memory)}, host RAM {Use(best.HostPeak, hw.Cpu.Ram)} (pinned {best.PinnedPeak}), NVMe {Use(best.NvmePeak, hw.Drives.Aggregate(Bytes.Zero, (a, d) => a + d.Capacity))}."));
        else lines.Add(I($"Headroom: host RAM {Use(best.HostPeak, hw.Cpu.Ram)} (pinned {best.PinnedPeak}), NVMe {best.NvmePeak}."));
        foreach (var alt in alternatives.Take(2))
        {
            double slower = best.TokensPerSecond > 0 ? 1 - alt.TokensPerSecond / best.TokensPerSecond : 0;
            lines.Add(I($"Next: {Describe(alt.Settings)}: {slower:P0} slower ({alt.Bottleneck}-bound), host RAM {alt.HostPeak}."));
        }
        if (defaults is { Feasible: true } && defaults.TokensPerSecond > 0)
            lines.Add(I($"The same structure with DeepSpeed's default knobs: {defaults.TokensPerSecond:N0} tokens/s ({best.TokensPerSecond / defaults.TokensPerSecond:0.00}× slower than tuned)."));
        else if (defaults is { Feasible: false })
            lines.Add("The same structure with DeepSpeed's default knobs does not fit: " + string.Join(" ", defaults.Problems));
        if (s.UsesNvme && s.NvmePath == PlaceholderNvmePath)
            lines.Add("It offloads to NVMe: pass --nvme-offload-path with a folder on the drive (check it with `aios check-nvme`).");
        lines.Add(I($"Evaluated {evaluated:N0} candidates ({simulated:N0} simulated, {feasible:N0} fit) in {elapsed.TotalSeconds:0.0} s."));
        return lines;
    }

    /// <summary>A candidate's structure in words.</summary>
    public static string Describe(TrainingSettings s)
    {
        string Tier(OffloadTier t) => t switch { OffloadTier.None => "GPU", OffloadTier.Cpu => "CPU", _ => "NVMe" };
        return $"ZeRO {SettingsRules.Name(s.ZeroStage)}, parameters on {Tier(s.ParamOffload)}, optimizer on {Tier(s.OptimizerOffload)}, " +
               $"micro-batch {s.MicroBatch} × {s.GradAccumulation}{(s.ActivationCheckpointing ? ", checkpointing" : "")}" +
               (s.OptimizerOffload != OffloadTier.None ? $", {(s.Schedule == StepSchedule.Overlapped ? "overlapped" : "DeepSpeed")} schedule" : "");
    }

    private static string Use(Bytes used, Bytes capacity) =>
        capacity.Value > 0 ? string.Create(CultureInfo.InvariantCulture, $"{used} of {capacity} ({used / capacity:P0})") : used.ToString();
}

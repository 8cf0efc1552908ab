using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Storage;

namespace AiOs.Planner.Settings;

/// <summary>What became of the offload folder: the settings to use, and one line to print when anything changed.</summary>
public sealed record OffloadFolderVerdict(TrainingSettings Settings, string? Note, bool Failed);

/// <summary>
/// The folder <c>--zero-stage infinity</c> swaps to when no <c>--nvme-offload-path</c> is given: <c>aios-offload</c>
/// in the folder the command runs from. It is only as fast as the drive under it, so the notes say it must be on
/// the NVMe drive; an unusable folder falls back to CPU offload (<see cref="OffloadFallback"/>).
/// </summary>
public static class DefaultOffloadFolder
{
    /// <summary>The folder's name under the base folder.</summary>
    public const string Name = "aios-offload";

    /// <summary>The default folder under <paramref name="baseFolder"/>, absolute.</summary>
    public static string Path(string baseFolder) => System.IO.Path.GetFullPath(System.IO.Path.Combine(baseFolder, Name));

    /// <summary>"parameters and optimizer on NVMe" (or whichever parts are), for notes.</summary>
    public static string Describe(TrainingSettings s)
    {
        var parts = new List<string>();
        if (s.ParamOffload == OffloadTier.Nvme) parts.Add("parameters");
        if (s.OptimizerOffload == OffloadTier.Nvme) parts.Add("optimizer");
        if (s.EffectiveGradientOffload == OffloadTier.Nvme) parts.Add("gradients");
        return (parts.Count > 1 ? string.Join(", ", parts[..^1]) + " and " + parts[^1] : string.Concat(parts)) + " on NVMe";
    }

    /// <summary>
    /// Checks the NVMe folder of <paramref name="s"/> with the check <c>aios check-nvme</c> makes and, when it is
    /// unusable, falls back to CPU offload if host RAM holds it (with a note naming why and the fix). With
    /// <paramref name="mayCreate"/> false (the planner) a missing folder is not created, only announced.
    /// </summary>
    public static OffloadFolderVerdict Validate(ModelSpec model, HardwareProfile hardware, TrainingSettings s, bool mayCreate)
    {
        if (!s.UsesNvme || s.NvmePath is not { Length: > 0 } path) return new(s, null, Failed: false);
        string full = System.IO.Path.GetFullPath(path);
        if (!mayCreate && !Directory.Exists(full) && !File.Exists(full))
            return new(s, $"{full} does not exist yet; a training run creates it there, so it must be on the fast NVMe drive (`aios check-nvme {full}` checks it)", Failed: false);
        var nvme = Memory.MemoryPlanner.Plan(model, hardware, s).Nvme.Items;
        var check = NvmeCheck.Check(full, nvme);
        var decision = OffloadFallback.Decide(model, hardware, s, check, allowFallback: true);
        if (decision.Message is null) return new(s, null, Failed: false);
        const string fix = " Fix: give --nvme-offload-path with a folder on an NVMe drive (`aios check-nvme FOLDER` checks one).";
        // OffloadFallback's own words name check-nvme's --no-fallback, which the commands calling this do not have.
        string why = string.Join(" ", check.Problems);
        string note = decision.FellBack
            ? $"NVMe offload folder unusable: {why} Planned with CPU offload instead (host RAM holds it).{fix}"
            : decision.Message + fix;
        return new(decision.Settings, note, decision.Failed);
    }
}

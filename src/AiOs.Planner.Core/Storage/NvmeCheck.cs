using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;
using Microsoft.Win32.SafeHandles;

namespace AiOs.Planner.Storage;

/// <summary>The verdict on an offload folder: what it is, what it must hold, and whether it can.</summary>
public sealed record NvmeCheckResult
{
    public required string Path { get; init; }
    public StorageFacts? Facts { get; init; }
    /// <summary>True when the folder did not exist and was created by the check.</summary>
    public bool Created { get; init; }
    /// <summary>Space per offloaded item, already multiplied by <see cref="SafetyFactor"/>.</summary>
    public required IReadOnlyList<MemoryItem> Needs { get; init; }
    public required double SafetyFactor { get; init; }
    public required IReadOnlyList<string> Problems { get; init; }
    public required IReadOnlyList<string> Warnings { get; init; }
    /// <summary>The tool's swap folders and scratch files already in the folder, live or stale.</summary>
    public IReadOnlyList<Leftover> Leftovers { get; init; } = [];

    public Bytes Required => Needs.Aggregate(Bytes.Zero, (sum, i) => sum + i.Bytes);

    public bool Usable => Problems.Count == 0;

    /// <summary>Throws <see cref="NvmeCheckException"/> with check-nvme's words when the folder cannot be used.</summary>
    public void ThrowIfUnusable()
    {
        if (!Usable) throw new NvmeCheckException(this);
    }
}

/// <summary>The offload folder failed the storage check; the message is what <c>aios check-nvme</c> says.</summary>
public sealed class NvmeCheckException(NvmeCheckResult result)
    : IOException($"NVMe offload folder unusable: {string.Join(" ", result.Problems)} (`aios check-nvme {result.Path}` shows the details.)")
{
    /// <summary>The check that failed.</summary>
    public NvmeCheckResult Result { get; } = result;
}

/// <summary>Validates an NVMe offload folder (the original plan's checks).</summary>
public static class NvmeCheck
{
    /// <summary>Space asked for beyond the estimate: swap files are padded to aligned sizes, and a full disk stops a run.</summary>
    public const double SafetyFactor = 1.2;

    /// <summary>Below this read rate offloading rarely pays; the figure is only a hint until calibration measures the drive.</summary>
    public static readonly Bandwidth SlowDriveHint = Bandwidth.FromGBps(1.0);

    /// <summary>Checks <paramref name="path"/> for the NVMe items of a plan (none: only usability).</summary>
    public static NvmeCheckResult Check(string path, IReadOnlyList<MemoryItem> nvmeItems) => Check(path, nvmeItems, directIo: true);

    /// <summary>
    /// The check a training run makes before it creates anything in <paramref name="path"/>: the same verdict as
    /// <c>aios check-nvme</c> for <paramref name="swapBytes"/> of swap files (times <see cref="SafetyFactor"/>);
    /// with <paramref name="directIo"/> false (buffered swap) a folder without O_DIRECT draws no warning.
    /// </summary>
    public static NvmeCheckResult ForRun(string path, bool directIo, Bytes swapBytes) =>
        Check(path, [new MemoryItem("swap files", swapBytes)], directIo);

    /// <summary>Checks <paramref name="path"/>; <paramref name="directIo"/> says whether the swap files would be opened with O_DIRECT.</summary>
    public static NvmeCheckResult Check(string path, IReadOnlyList<MemoryItem> nvmeItems, bool directIo)
    {
        var problems = new List<string>();
        var warnings = new List<string>();
        var needs = nvmeItems.Select(i => i with { Bytes = i.Bytes * SafetyFactor, Note = $"{i.Bytes} × {SafetyFactor} safety" }).ToList();
        bool created = false;
        StorageFacts? facts = null;
        IReadOnlyList<Leftover> leftovers = [];
        string full = System.IO.Path.GetFullPath(path);
        try
        {
            if (NoFollowFs.LinkRefusal(full, "The offload folder") is { } link)
            {
                problems.Add(link);
            }
            else if (File.Exists(full))
            {
                problems.Add($"{full} is a file; give a folder for the swap files.");
            }
            else
            {
                if (!Directory.Exists(full))
                {
                    Directory.CreateDirectory(full);
                    created = true;
                }
                ProbeWrite(full);
                facts = StorageInspector.Inspect(full);
                leftovers = Leftovers.Find(full);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            problems.Add($"{full} cannot be created or written: {e.Message}. Pick a folder you own on a local drive, or fix its permissions.");
        }

        if (facts is not null)
        {
            Bytes required = needs.Aggregate(Bytes.Zero, (sum, i) => sum + i.Bytes);
            if (required > facts.Free)
                problems.Add($"{full} has {facts.Free} free but needs {required} ({string.Join(", ", needs.Select(n => $"{n.Name} {n.Bytes}"))}). Free space, pick a bigger drive, or offload less.");
            if (StorageInspector.IsMemory(facts.FileSystem))
                problems.Add($"{full} is on {facts.FileSystem}, which lives in RAM: swap files there would take the RAM offloading is meant to save. Use a folder on an NVMe drive.");
            else if (directIo && !facts.DirectIo)
                warnings.Add($"O_DIRECT does not work on {full} ({facts.FileSystem}); I/O would go through the page cache, using RAM and running slower.");
            if (StorageInspector.IsNetwork(facts.FileSystem))
                warnings.Add($"{full} is on a network filesystem ({facts.FileSystem}); offload traffic would cross the network. Prefer a local NVMe drive.");
            if (facts.Rotational == true)
                warnings.Add($"The kernel marks {facts.BlockDevice} as rotational (a hard disk). Virtual disks often claim this falsely; `aios calibrate --nvme-path {full}` measures what it really does.");
            if (Leftovers.StaleWarning(leftovers, full) is { } stale) warnings.Add(stale);
        }
        return new NvmeCheckResult
        {
            Path = full,
            Facts = facts,
            Created = created,
            Needs = needs,
            SafetyFactor = SafetyFactor,
            Problems = problems,
            Warnings = warnings,
            Leftovers = leftovers,
        };
    }

    /// <summary>Writes and removes one block under an unpredictable name, created exclusively (a planted link is never written through).</summary>
    private static void ProbeWrite(string folder)
    {
        string probe = System.IO.Path.Combine(folder, ScratchNames.New(ScratchKind.WriteProbe));
        int errno = NoFollowFs.TryCreateNew(probe, out SafeFileHandle handle);
        if (errno != 0) throw new IOException($"creating a probe file failed: {NoFollowFs.Describe(errno)}");
        try
        {
            using (handle) RandomAccess.Write(handle, new byte[4096], 0);
        }
        finally
        {
            File.Delete(probe);
        }
    }
}

/// <summary>What to do when the NVMe folder cannot be used.</summary>
public sealed record FallbackDecision(TrainingSettings Settings, bool FellBack, bool Failed, string? Message);

/// <summary>The original plan's behaviour: an unusable NVMe folder falls back to CPU offload when RAM suffices.</summary>
public static class OffloadFallback
{
    public static FallbackDecision Decide(ModelSpec model, HardwareProfile hardware, TrainingSettings s, NvmeCheckResult check, bool allowFallback)
    {
        if (check.Usable || !s.UsesNvme) return new FallbackDecision(s, FellBack: false, Failed: false, null);
        string why = string.Join(" ", check.Problems);
        if (!allowFallback)
            return new FallbackDecision(s, FellBack: false, Failed: true, $"NVMe offload folder unusable: {why} (--no-fallback is set, so this is an error.)");
        var cpu = s with
        {
            ParamOffload = s.ParamOffload == OffloadTier.Nvme ? OffloadTier.Cpu : s.ParamOffload,
            OptimizerOffload = s.OptimizerOffload == OffloadTier.Nvme ? OffloadTier.Cpu : s.OptimizerOffload,
            GradientOffload = s.GradientOffload == OffloadTier.Nvme ? OffloadTier.Cpu : s.GradientOffload,
            ZeroStage = s.ParamOffload != OffloadTier.None ? ZeroStage.Zero3 : s.ZeroStage == ZeroStage.Infinity ? ZeroStage.Zero3 : s.ZeroStage,
        };
        var plan = TrainingPlanner.Plan(model, hardware, cpu);
        if (!plan.Feasible)
            return new FallbackDecision(s, FellBack: false, Failed: true,
                $"NVMe offload folder unusable: {why} CPU offload is no way out: {string.Join(" ", plan.Problems)}");
        return new FallbackDecision(cpu, FellBack: true, Failed: false,
            $"NVMe offload folder unusable: {why} Falling back to CPU offload: host RAM holds it ({plan.Memory.CpuPeak} of {hardware.Cpu.Ram}). Pass --no-fallback to make this an error.");
    }
}

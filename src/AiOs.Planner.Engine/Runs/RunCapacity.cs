using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Runs;

/// <summary>What this machine offers a run now, for <see cref="RunCapacity"/>.</summary>
/// <param name="HostRamAvailable">Host RAM the run can take (MemAvailable); null where it cannot be read.</param>
/// <param name="NvmeFree">Free space on the file system of the NVMe path; null without NVMe offload or where it cannot be read.</param>
public sealed record LocalResources(Bytes? HostRamAvailable, Bytes? NvmeFree)
{
    /// <summary>Reads MemAvailable and the free space under <paramref name="nvmePath"/> (its nearest existing folder).</summary>
    public static LocalResources Read(string? nvmePath) => new(HostMemoryEstimate.Available(), FreeSpace(nvmePath));

    private static Bytes? FreeSpace(string? path)
    {
        if (string.IsNullOrWhiteSpace(path)) return null;
        string? dir = Path.GetFullPath(path);
        while (dir is not null && !Directory.Exists(dir)) dir = Path.GetDirectoryName(dir);
        if (dir is null) return null;
        try
        {
            // On Linux DriveInfo takes any folder and reports statvfs of the file system that holds it.
            return new Bytes(new DriveInfo(dir).AvailableFreeSpace);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
    }
}

/// <summary>
/// The planner's capacity check (host RAM, device memory, NVMe space; activations included) for a run of the engine on
/// this machine, so <c>aios train</c> refuses what <c>aios plan</c> already knows cannot fit, before a run folder exists.
/// </summary>
/// <remarks>
/// What is true of an engine run, and so of the hardware the check plans for: it runs here, in one process, on one device.
/// Host RAM is therefore this machine's available RAM (MemAvailable, as <see cref="EngineSettings.Check"/> uses), not the
/// profile's figure, which may describe another machine the prediction is for. On a CPU device there is no GPU: the
/// device's working set, activations included, is host RAM (the planner's CPU-only accounting). On a CUDA device the
/// GPU is the profile's, held to <see cref="EngineOptions.GpuMemoryLimit"/> when set; without a profile that describes a
/// GPU its memory is unknown and not checked (the engine then explains an out-of-memory error when one happens). NVMe
/// space is the free space of the file system that holds the NVMe path. One node, one device, whatever the profile or the
/// settings say about more: the engine does not shard.
/// </remarks>
public static class RunCapacity
{
    /// <summary>The planner's capacity problems for <paramref name="settings"/> on this machine; empty when the run fits.</summary>
    /// <param name="model">The model.</param>
    /// <param name="settings">The run's settings.</param>
    /// <param name="options">The engine options (device, GPU memory limit).</param>
    /// <param name="profile">The chosen hardware profile (--hardware, or the default CPU profile); null: none.</param>
    /// <param name="local">This machine's RAM and NVMe space (<see cref="LocalResources.Read"/>).</param>
    public static IReadOnlyList<string> Problems(ModelSpec model, TrainingSettings settings, EngineOptions options, HardwareProfile? profile, LocalResources local)
    {
        ArgumentNullException.ThrowIfNull(local);
        HardwareProfile hardware = ThisMachine(profile, options, settings, local);
        var plan = TrainingPlanner.Plan(model, hardware, settings with { Nodes = 1, GpusPerNode = 1 }, new PlanOptions { Simulate = false });
        // Without a readable MemAvailable or free space the RAM or NVMe figure is a stand-in, so its verdict is left out.
        return plan.CapacityProblems
            .Where(p => local.HostRamAvailable is not null || !(p.StartsWith("Host RAM", StringComparison.Ordinal) || p.StartsWith("Pinned", StringComparison.Ordinal)))
            .Where(p => local.NvmeFree is not null || !p.StartsWith("NVMe", StringComparison.Ordinal))
            .Select(p => options.GpuMemoryLimit is { } cap && p.StartsWith("GPU memory", StringComparison.Ordinal) ? $"--gpu-memory-limit {cap}: {p}" : p)
            .Select(p => p.StartsWith("Host RAM", StringComparison.Ordinal) ? p + " " + LargestParts(plan.Memory) : p)
            .ToArray();
    }

    /// <summary>The three largest parts of host RAM, so the message says what to shrink (on a CPU device, usually activations: --micro-batch, --grad-checkpointing).</summary>
    private static string LargestParts(Memory.MemoryPlan memory) =>
        "Largest parts: " + string.Join(", ", memory.CpuPinned.Items.Concat(memory.CpuPageable.Items).OrderByDescending(i => i.Bytes).Take(3)
            .Select(i => $"{i.Name} {i.Bytes}")) + ".";

    /// <summary>The hardware the run actually has (see the remarks): the profile's figures, with this machine's RAM, device and NVMe space.</summary>
    public static HardwareProfile ThisMachine(HardwareProfile? profile, EngineOptions options, TrainingSettings settings, LocalResources local)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(local);
        // Rates do not matter (no simulation); only capacities do. A stand-in is enormous so that it never refuses.
        const double Unknown = 1e9;
        CpuSpec cpu = profile?.Cpu ?? new CpuSpec { Cores = Environment.ProcessorCount, RamGib = Unknown, MemoryBandwidthGbps = 1, AdamParamsPerS = 1 };
        cpu = cpu with { RamGib = local.HostRamAvailable is { } ram ? ram.GiB : Unknown };
        bool cuda = options.Device.StartsWith("cuda", StringComparison.Ordinal);
        GpuSpec? gpu = null;
        if (cuda)
        {
            gpu = profile?.Gpu ?? new GpuSpec { Model = "unknown (pass --hardware to check device memory)", MemoryGib = Unknown, PeakTflops = new() { Fp32 = 1 }, MemoryBandwidthGbps = 1 };
            if (options.GpuMemoryLimit is { } cap) gpu = gpu with { MemoryGib = cap.GiB };
        }
        var drives = new List<DriveSpec>();
        if (settings.UsesNvme)
        {
            DriveSpec drive = profile is { Drives.Count: > 0 } ? profile.Drives[0] : new DriveSpec { CapacityGb = Unknown, Read = new() { PeakGbps = 1 }, Write = new() { PeakGbps = 1 } };
            drives.Add(drive with { Count = 1, CapacityGb = local.NvmeFree is { } free ? free.Value / 1e9 : Unknown });
        }
        return new HardwareProfile
        {
            Name = profile is null ? "this machine" : $"this machine ({profile.Name} with its RAM{(settings.UsesNvme ? " and NVMe space" : "")} measured)",
            Nodes = 1,
            GpusPerNode = cuda ? 1 : 0,
            Gpu = gpu,
            HostLink = cuda ? profile?.HostLink : null,
            Cpu = cpu,
            Drives = drives,
        };
    }
}

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
    /// <param name="profile">Rates (and, on CUDA, the GPU) to keep; null: stand-ins.</param>
    /// <param name="options">The engine options (device, GPU memory limit).</param>
    /// <param name="settings">The run's settings: a drive is described when they offload to NVMe.</param>
    /// <param name="local">This machine's RAM and free space.</param>
    /// <param name="includeDrive">Describe the drive even when <paramref name="settings"/> do not use it (for the tuner, which may choose NVMe).</param>
    public static HardwareProfile ThisMachine(HardwareProfile? profile, EngineOptions options, TrainingSettings settings, LocalResources local, bool includeDrive = false)
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
            // A limit holds the card to less; above the card it holds nothing (as GpuMemoryLimit.Apply plans it).
            if (options.GpuMemoryLimit is { } cap && cap.GiB < gpu.MemoryGib.Value) gpu = gpu with { MemoryGib = cap.GiB };
        }
        var drives = new List<DriveSpec>();
        if (settings.UsesNvme || includeDrive)
        {
            DriveSpec drive = profile is { Drives.Count: > 0 } ? profile.Drives[0] : new DriveSpec { CapacityGb = Unknown, Read = new() { PeakGbps = 1 }, Write = new() { PeakGbps = 1 } };
            drives.Add(drive with { Count = 1, CapacityGb = local.NvmeFree is { } free ? free.Value / 1e9 : Unknown });
        }
        return new HardwareProfile
        {
            Name = profile is null ? "this machine" : $"this machine ({profile.Name} with its RAM{(drives.Count > 0 ? " and NVMe space" : "")} measured)",
            Nodes = 1,
            GpusPerNode = cuda ? 1 : 0,
            Gpu = gpu,
            HostLink = cuda ? profile?.HostLink : null,
            Cpu = cpu,
            Drives = drives,
        };
    }
}

/// <summary>
/// The profile <c>aios train</c> uses on a CPU without <c>--hardware</c>: this machine's cores, available RAM and free space,
/// no GPU, with the rates of a bundled CPU profile, which describe another machine until <c>aios calibrate-cpu</c> measures this one.
/// </summary>
public static class DefaultCpuMachine
{
    /// <summary>The bundled CPU profiles whose rates stand in, best first (the calibrated CI VM, then its estimate).</summary>
    public static readonly IReadOnlyList<string> RateProfiles = ["ci-2core-24gb-calibrated", "ci-2core-24gb"];

    /// <summary>
    /// This machine as <see cref="RunCapacity.ThisMachine"/> sees it, with <paramref name="rates"/>' rates and <paramref name="cores"/>
    /// cores, the drive described (so the tuner may place state on it), and no GPU.
    /// </summary>
    /// <param name="rates">The bundled profile whose rates stand in.</param>
    /// <param name="cores">This machine's logical CPUs.</param>
    /// <param name="gpusSeen">GPUs the driver reports, which a CPU run does not use (named so the user can pass --device cuda).</param>
    /// <param name="options">The engine options (a CPU device).</param>
    /// <param name="settings">The run's settings.</param>
    /// <param name="local">This machine's RAM and the free space of the swap folder.</param>
    public static HardwareProfile Build(HardwareProfile rates, int cores, int gpusSeen, EngineOptions options, TrainingSettings settings, LocalResources local)
    {
        ArgumentNullException.ThrowIfNull(rates);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Device.StartsWith("cuda", StringComparison.Ordinal))
            throw new ArgumentException("The default CPU profile is for --device cpu; on CUDA pass --hardware (aios calibrate-gpu writes one).", nameof(options));
        HardwareProfile machine = RunCapacity.ThisMachine(rates, options, settings, local, includeDrive: true);
        return machine with
        {
            Name = $"this machine ({cores} cores, {Show(local.HostRamAvailable)} RAM available, " +
                $"{(gpusSeen > 0 ? $"{gpusSeen} GPU(s) seen but not used by --device cpu" : "no GPU")}; rates of {rates.Name})",
            Description = Note(rates.Name),
            Source = FigureSource.Estimate,
            Cpu = machine.Cpu with { Cores = Math.Max(1, cores) },
        };
    }

    /// <summary>What to tell the user about the profile's rates.</summary>
    public static string Note(string ratesProfile) => $"uncalibrated rates from {ratesProfile}; run aios calibrate-cpu to measure this machine";

    private static string Show(Bytes? b) => b is { } v ? v.ToString() : "unknown";
}

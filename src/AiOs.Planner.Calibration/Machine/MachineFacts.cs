using System.Globalization;
using AiOs.Planner.Storage;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Machine;

/// <summary>Facts about the machine and the drive under test, read from /proc and /sys, for the profile's <c>machine</c> section.</summary>
public sealed record MachineFacts
{
    /// <summary>The first "model name" of /proc/cpuinfo.</summary>
    public required string CpuModel { get; init; }
    /// <summary>Logical CPUs this process may use.</summary>
    public required int Cores { get; init; }
    /// <summary>MemTotal of /proc/meminfo.</summary>
    public required Bytes Ram { get; init; }
    /// <summary>The running kernel release.</summary>
    public string? Kernel { get; init; }
    /// <summary>Mount, device, filesystem and space of the folder under test.</summary>
    public required StorageFacts Storage { get; init; }

    /// <summary>Reads the facts; <paramref name="folder"/> is the folder on the drive under test.</summary>
    public static MachineFacts Read(string folder) => new()
    {
        CpuModel = CpuModelFrom(ReadText("/proc/cpuinfo")) ?? "unknown CPU",
        Cores = System.Environment.ProcessorCount,
        Ram = RamFrom(ReadText("/proc/meminfo")) ?? Bytes.Zero,
        Kernel = ReadText("/proc/sys/kernel/osrelease")?.Trim(),
        Storage = StorageInspector.Inspect(folder),
    };

    /// <summary>NVIDIA GPUs the driver reports (one folder each under <paramref name="driverFolder"/>); 0 without the driver.</summary>
    public static int NvidiaGpuCount(string driverFolder = "/proc/driver/nvidia/gpus")
    {
        try
        {
            return Directory.Exists(driverFolder) ? Directory.GetDirectories(driverFolder).Length : 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return 0;
        }
    }

    /// <summary>The first "model name" of /proc/cpuinfo.</summary>
    internal static string? CpuModelFrom(string? cpuinfo) =>
        cpuinfo?.Split('\n').Where(l => l.StartsWith("model name", StringComparison.Ordinal))
            .Select(l => l[(l.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim()).FirstOrDefault();

    /// <summary>Memory available now, held to the process's memory cgroup (<see cref="Measurement.HostMemory.Available"/>), or null where it cannot be read.</summary>
    public static Bytes? Available() => Measurement.HostMemory.Available();

    /// <summary>MemTotal of /proc/meminfo.</summary>
    internal static Bytes? RamFrom(string? meminfo) => Measurement.HostMemory.MeminfoField(meminfo, "MemTotal:");

    /// <summary>The facts as the profile's free-form <c>machine</c> map.</summary>
    public IReadOnlyDictionary<string, string> ToMap() => new SortedDictionary<string, string>(StringComparer.Ordinal)
    {
        ["cpu_model"] = CpuModel,
        ["cores"] = Cores.ToString(CultureInfo.InvariantCulture),
        ["ram"] = Ram.ToString(),
        ["kernel"] = Kernel ?? "unknown",
        ["drive_path"] = Storage.Path,
        ["drive_mount"] = Storage.MountPoint ?? "unknown",
        ["drive_device"] = Storage.Device ?? "unknown",
        ["drive_block_device"] = Storage.BlockDevice ?? "unknown",
        ["drive_model"] = Storage.DeviceModel ?? "unknown",
        ["drive_filesystem"] = Storage.FileSystem ?? "unknown",
        ["drive_rotational"] = Storage.Rotational is { } r ? (r ? "1" : "0") : "unknown",
        ["drive_o_direct"] = Storage.DirectIo ? "yes" : "no",
        ["drive_size"] = Storage.Total.ToString(),
    };

    private static string? ReadText(string path)
    {
        try
        {
            return File.Exists(path) ? File.ReadAllText(path) : null;
        }
        catch (IOException)
        {
            return null;
        }
    }
}

using AiOs.Planner.Units;

namespace AiOs.Planner.Storage;

/// <summary>What the filesystem says about a folder: where it is mounted, on what, and how much is free.</summary>
public sealed record StorageFacts
{
    public required string Path { get; init; }
    public string? MountPoint { get; init; }
    /// <summary>The mount's source, e.g. <c>/dev/nvme0n1p2</c>.</summary>
    public string? Device { get; init; }
    /// <summary>The whole block device behind the mount, e.g. <c>nvme0n1</c>.</summary>
    public string? BlockDevice { get; init; }
    public string? DeviceModel { get; init; }
    public string? FileSystem { get; init; }
    /// <summary>The kernel's rotational flag. Virtual disks often claim 1; only calibration measures speed.</summary>
    public bool? Rotational { get; init; }
    /// <summary>Whether a file in the folder opened with O_DIRECT and took an aligned write.</summary>
    public bool DirectIo { get; init; }
    public Bytes Free { get; init; }
    public Bytes Total { get; init; }
}

/// <summary>Reads mount, device and space facts from Linux's /proc and /sys.</summary>
public static class StorageInspector
{
    private static readonly HashSet<string> NetworkFileSystems = new(StringComparer.Ordinal)
        { "nfs", "nfs4", "cifs", "smb3", "fuse.sshfs", "9p", "virtiofs", "ceph", "glusterfs", "lustre", "fuse" };

    private static readonly HashSet<string> MemoryFileSystems = new(StringComparer.Ordinal) { "tmpfs", "ramfs" };

    public static bool IsNetwork(string? fs) => fs is not null && (NetworkFileSystems.Contains(fs) || fs.StartsWith("fuse.", StringComparison.Ordinal));

    public static bool IsMemory(string? fs) => fs is not null && MemoryFileSystems.Contains(fs);

    /// <summary>Facts about an existing folder.</summary>
    public static StorageFacts Inspect(string folder)
    {
        string full = System.IO.Path.GetFullPath(folder);
        var (mount, device, fs) = FindMount(full);
        string? block = device is null ? null : BlockDeviceOf(device);
        var drive = new DriveInfo(full);
        return new StorageFacts
        {
            Path = full,
            MountPoint = mount,
            Device = device,
            BlockDevice = block,
            DeviceModel = block is null ? null : ReadSys($"/sys/block/{block}/device/model"),
            FileSystem = fs,
            Rotational = block is null ? null : ReadSys($"/sys/block/{block}/queue/rotational") switch { "1" => true, "0" => false, _ => null },
            DirectIo = DirectIoProbe.Works(full),
            Free = new Bytes(drive.AvailableFreeSpace),
            Total = new Bytes(drive.TotalSize),
        };
    }

    /// <summary>The longest mount point that contains <paramref name="path"/>, from /proc/self/mounts.</summary>
    internal static (string? Mount, string? Device, string? FileSystem) FindMount(string path)
    {
        const string mounts = "/proc/self/mounts";
        if (!File.Exists(mounts)) return (null, null, null);
        (string? Mount, string? Device, string? FileSystem) best = (null, null, null);
        foreach (string line in File.ReadLines(mounts))
        {
            string[] f = line.Split(' ');
            if (f.Length < 3) continue;
            string mount = f[1].Replace("\\040", " ", StringComparison.Ordinal);
            bool contains = path == mount || path.StartsWith(mount.TrimEnd('/') + "/", StringComparison.Ordinal) || mount == "/";
            if (contains && (best.Mount is null || mount.Length >= best.Mount.Length)) best = (mount, f[0], f[2]);
        }
        return best;
    }

    /// <summary>Maps a mount source such as /dev/vda1 to its whole disk (vda) through /sys/class/block.</summary>
    internal static string? BlockDeviceOf(string device)
    {
        if (!device.StartsWith("/dev/", StringComparison.Ordinal)) return null;
        try
        {
            string name = System.IO.Path.GetFileName(new FileInfo(device).ResolveLinkTarget(true)?.FullName ?? device);
            string sys = $"/sys/class/block/{name}";
            if (!Directory.Exists(sys)) return null;
            if (!File.Exists(System.IO.Path.Combine(sys, "partition"))) return name;
            string? real = new DirectoryInfo(sys).ResolveLinkTarget(true)?.FullName;
            return real is null ? null : System.IO.Path.GetFileName(System.IO.Path.GetDirectoryName(real));
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static string? ReadSys(string path)
    {
        try
        {
            return File.Exists(path) ? File.ReadAllText(path).Trim() : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}

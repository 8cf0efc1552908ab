using System.Globalization;
using AiOs.Planner.Units;

namespace AiOs.Planner.Measurement;

/// <summary>
/// Memory this process may still take: <c>MemAvailable</c> of <c>/proc/meminfo</c>, held to what the process's memory
/// cgroup has left (v2 <c>memory.max − memory.current</c>, v1 <c>memory.limit_in_bytes − memory.usage_in_bytes</c>), so a
/// probe sized from it does not outgrow a container's limit on a large host.
/// </summary>
public static class HostMemory
{
    /// <summary>What is available now, or null where <c>/proc/meminfo</c> cannot be read.</summary>
    public static Bytes? Available(string root = "/")
    {
        Bytes? free = MeminfoAvailable(Read(Path.Combine(root, "proc/meminfo")));
        Bytes? cgroup = CgroupLeft(
            Read(Path.Combine(root, "sys/fs/cgroup/memory.max")), Read(Path.Combine(root, "sys/fs/cgroup/memory.current")),
            Read(Path.Combine(root, "sys/fs/cgroup/memory/memory.limit_in_bytes")), Read(Path.Combine(root, "sys/fs/cgroup/memory/memory.usage_in_bytes")));
        return (free, cgroup) switch
        {
            ({ } f, { } c) => Bytes.Min(f, c),
            ({ } f, null) => f,
            _ => null,
        };
    }

    /// <summary>MemAvailable of a <c>/proc/meminfo</c> text.</summary>
    public static Bytes? MeminfoAvailable(string? meminfo)
    {
        string? line = meminfo?.Split('\n').FirstOrDefault(l => l.StartsWith("MemAvailable:", StringComparison.Ordinal));
        string[]? parts = line?.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return parts is { Length: >= 2 } && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out long kib) ? Bytes.FromKiB(kib) : null;
    }

    /// <summary>
    /// What a memory cgroup has left from its files' texts (v2's first, else v1's); null when there is no limit ("max", or
    /// v1's near-2^63 "unlimited") or the files are absent.
    /// </summary>
    public static Bytes? CgroupLeft(string? v2Max, string? v2Current, string? v1Limit, string? v1Usage)
    {
        static long? Number(string? text) =>
            long.TryParse(text?.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long n) ? n : null;
        (long? limit, long? used) = v2Max is not null ? (Number(v2Max), Number(v2Current)) : (Number(v1Limit), Number(v1Usage));
        if (limit is not { } l || l >= 1L << 60) return null;
        return new Bytes(Math.Max(0, l - (used ?? 0)));
    }

    private static string? Read(string path)
    {
        try
        {
            return File.Exists(path) ? File.ReadAllText(path) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}

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
    public static Bytes? MeminfoAvailable(string? meminfo) => MeminfoField(meminfo, "MemAvailable:");

    /// <summary>A field of a <c>/proc/meminfo</c> text (<paramref name="field"/> with its colon: its kiB figure), or null.</summary>
    public static Bytes? MeminfoField(string? meminfo, string field)
    {
        string? line = meminfo?.Split('\n').FirstOrDefault(l => l.StartsWith(field, StringComparison.Ordinal));
        string[]? parts = line?.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return parts is { Length: >= 2 } && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out long kib) ? Bytes.FromKiB(kib) : null;
    }

    /// <summary>
    /// Elements of <paramref name="bytesPerElement"/> bytes whose working set spans <paramref name="cacheMultiple"/> times
    /// <paramref name="lastLevelCache"/>, as a training step's state does, at most <paramref name="max"/> and a quarter of
    /// <paramref name="available"/> memory, never below <paramref name="floor"/> (the floor where the cache is unknown). The
    /// rule calibration's host probes and the engine's update load beside the floor probe are sized by.
    /// </summary>
    public static long ElementsPastCache(Bytes? lastLevelCache, Bytes? available, long bytesPerElement, int cacheMultiple, long floor, long max)
    {
        if (lastLevelCache is not { } cache || cache <= Bytes.Zero) return floor;
        long elements = Math.Min(max, cacheMultiple * cache.Value / bytesPerElement);
        if (available is { } free && free > Bytes.Zero) elements = Math.Min(elements, free.Value / 4 / bytesPerElement);
        return Math.Max(floor, elements);
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

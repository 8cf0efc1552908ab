using System.Globalization;
using AiOs.Planner.Units;

namespace AiOs.Planner.Measurement;

/// <summary>
/// The processor's last-level cache, read from <c>/sys/devices/system/cpu/cpu*/cache/index*</c>: the highest level's data
/// or unified caches, each counted once however many CPUs share it (an H100 VM's Xeon: one 300 MiB L3).
/// </summary>
public static class CpuCaches
{
    /// <summary>The last-level cache of this machine, or null where sysfs does not describe it.</summary>
    public static Bytes? LastLevel(string cpuFolder = "/sys/devices/system/cpu")
    {
        try
        {
            if (!Directory.Exists(cpuFolder)) return null;
            var caches = new List<CacheEntry>();
            foreach (string cpu in Directory.EnumerateDirectories(cpuFolder, "cpu*"))
            {
                string cacheFolder = Path.Combine(cpu, "cache");
                if (!Directory.Exists(cacheFolder)) continue;
                foreach (string index in Directory.EnumerateDirectories(cacheFolder, "index*"))
                    if (Entry(index) is { } e) caches.Add(e);
            }
            return LastLevel(caches);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>One cache as sysfs describes it: level, type (Data, Instruction, Unified), size and the CPUs that share it.</summary>
    public readonly record struct CacheEntry(int Level, string Type, Bytes Size, string SharedCpus);

    /// <summary>The highest level's data and unified caches of <paramref name="caches"/>, each distinct (level, CPUs) once; null if none.</summary>
    public static Bytes? LastLevel(IEnumerable<CacheEntry> caches)
    {
        var usable = caches.Where(c => c.Type is "Data" or "Unified" && c.Size > Bytes.Zero).ToList();
        if (usable.Count == 0) return null;
        int top = usable.Max(c => c.Level);
        return usable.Where(c => c.Level == top).DistinctBy(c => c.SharedCpus)
            .Aggregate(Bytes.Zero, (sum, c) => sum + c.Size);
    }

    /// <summary>Parses sysfs's size text ("266240K", "32M", "48K").</summary>
    public static Bytes? ParseSize(string? text)
    {
        text = text?.Trim();
        if (string.IsNullOrEmpty(text)) return null;
        long scale = char.ToUpperInvariant(text[^1]) switch { 'K' => 1L << 10, 'M' => 1L << 20, 'G' => 1L << 30, _ => 1 };
        string digits = scale == 1 ? text : text[..^1];
        return long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out long n) ? new Bytes(n * scale) : null;
    }

    private static CacheEntry? Entry(string index)
    {
        string? Read(string name)
        {
            string path = Path.Combine(index, name);
            return File.Exists(path) ? File.ReadAllText(path).Trim() : null;
        }
        // Who shares the cache: its CPU list, else its map, else its id within the level; with none of them the cache is
        // not counted, since counting it once per CPU would multiply a shared L3.
        string? sharing = Read("shared_cpu_list") ?? Read("shared_cpu_map") ?? (Read("id") is { } id ? "id " + id : null);
        return int.TryParse(Read("level"), NumberStyles.None, CultureInfo.InvariantCulture, out int level) && Read("type") is { } type
            && ParseSize(Read("size")) is { } size && sharing is not null
            ? new CacheEntry(level, type, size, sharing)
            : null;
    }
}

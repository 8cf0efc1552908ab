using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Metrics;

/// <summary>Resident memory of this process from <c>/proc/self/status</c> (zero where that file does not exist).</summary>
public static class ProcessMemory
{
    /// <summary>Current resident set (VmRSS).</summary>
    public static Bytes Resident() => Field("VmRSS:");

    /// <summary>Current resident set in bytes, or null where <c>/proc/self/status</c> does not say (for start-up phases' records).</summary>
    public static long? ResidentOrNull() => Resident() is { Value: > 0 } r ? r.Value : null;

    /// <summary>Peak resident set since the process started (VmHWM).</summary>
    public static Bytes PeakResident() => Field("VmHWM:");

    private static Bytes Field(string name)
    {
        const string status = "/proc/self/status";
        if (!File.Exists(status)) return Bytes.Zero;
        foreach (string line in File.ReadLines(status))
        {
            if (!line.StartsWith(name, StringComparison.Ordinal)) continue;
            string[] parts = line[name.Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return long.TryParse(parts[0], out long kib) ? Bytes.FromKiB(kib) : Bytes.Zero;
        }
        return Bytes.Zero;
    }
}

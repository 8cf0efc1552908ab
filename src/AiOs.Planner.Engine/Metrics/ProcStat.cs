using System.Globalization;

namespace AiOs.Planner.Engine.Metrics;

/// <summary>
/// Parsers of the two <c>/proc</c> files that say how much CPU time the machine and this process have spent, in clock ticks
/// (<c>USER_HZ</c>). They take the file's text, so that tests can feed it; an odd or cut-off text gives null, never an exception.
/// </summary>
public static class ProcStat
{
    /// <summary>
    /// Busy ticks of all cores together from <c>/proc/stat</c>'s first line (<c>cpu  user nice system idle iowait irq softirq
    /// steal guest guest_nice</c>): user + nice + system + irq + softirq + steal. Idle and iowait are not busy; guest time is
    /// already inside user and nice. Kernels before 2.6.11 have no steal field (counted as 0). Null without that line or
    /// with a field that is not a count.
    /// </summary>
    public static long? MachineBusyTicks(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string? line = text.Split('\n').FirstOrDefault(l => l.StartsWith("cpu ", StringComparison.Ordinal));
        if (line is null) return null;
        // After "cpu": user, nice, system, idle, iowait, irq, softirq, then steal where the kernel has it.
        long?[] counts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Skip(1).Take(8).Select(Count).ToArray();
        if (counts.Length < 7 || counts.Any(c => c is null)) return null;
        return counts[0] + counts[1] + counts[2] + counts[5] + counts[6] + (counts.Length > 7 ? counts[7] : 0);
    }

    /// <summary>
    /// A process's CPU ticks from its <c>/proc/PID/stat</c> (<c>/proc/self/stat</c> for this one): utime + stime (fields 14 and 15), which count every thread of the
    /// process. The fields are counted after the last <c>)</c>, since the command name in brackets may hold spaces and brackets.
    /// Null when the text does not have them.
    /// </summary>
    public static long? ProcessTicks(string text)
    {
        // fields[0] is the state (field 3), so utime (field 14) is fields[11] and stime (field 15) fields[12].
        if (AfterName(text) is not { Length: >= 13 } fields) return null;
        return Count(fields[11]) is { } user && Count(fields[12]) is { } system ? user + system : null;
    }

    /// <summary>The parent's process id from a <c>/proc/PID/stat</c> (field 4, after the last <c>)</c>); null when the text does not have it.</summary>
    public static int? ParentId(string text)
    {
        return AfterName(text) is { Length: >= 2 } fields && Count(fields[1]) is { } id and <= int.MaxValue ? (int)id : null;
    }

    /// <summary>
    /// The fields of a <c>/proc/PID/stat</c> after the command name (from the state, field 3, on), counted from the last
    /// <c>)</c>, since the name in brackets may hold spaces and brackets; null without one.
    /// </summary>
    private static string[]? AfterName(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int close = text.LastIndexOf(')');
        return close < 0 ? null : text[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    /// <summary>A non-negative whole count; null for anything else (a sign, a fraction, an overflow).</summary>
    private static long? Count(string field) =>
        long.TryParse(field.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long value) ? value : null;
}

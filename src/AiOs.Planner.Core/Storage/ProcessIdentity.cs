using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace AiOs.Planner.Storage;

/// <summary>Whether the process that made a scratch file or swap folder is still running.</summary>
public enum OwnerState
{
    /// <summary>Running (or its lock is held): never removed.</summary>
    Alive,
    /// <summary>Gone from this host: its leftovers may be removed.</summary>
    Dead,
    /// <summary>Cannot be told (another host, no start time): never removed.</summary>
    Unknown,
    /// <summary>Not recognised as the tool's (no owner record, a link, a foreign name): never removed.</summary>
    NotOurs,
}

/// <summary>
/// A process as the kernel names it: pid, start time (clock ticks after boot, field 22 of /proc/&lt;pid&gt;/stat)
/// and host. The start time tells a reused pid from the original, so a new process never makes a dead run look alive.
/// </summary>
public sealed record ProcessIdentity(int Pid, long StartTicks, string Host)
{
    /// <summary>This process.</summary>
    public static ProcessIdentity Current()
    {
        int pid = System.Environment.ProcessId;
        return new ProcessIdentity(pid, StartTicksOf(pid) ?? 0, System.Environment.MachineName);
    }

    /// <summary>A short, stable tag of the host name for file names (8 hex digits of its SHA-256).</summary>
    public static string HostTag(string host) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(host)))[..8];

    /// <summary>The start time of <paramref name="pid"/> on this host, or null when no such process runs.</summary>
    public static long? StartTicksOf(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
            // The command name (field 2) may hold spaces and parentheses; fields after the last ')' are plain.
            string[] rest = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            // rest[0] is field 3 (state), so field 22 (starttime) is rest[19].
            return rest.Length > 19 && long.TryParse(rest[19], NumberStyles.None, CultureInfo.InvariantCulture, out long ticks) ? ticks : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>True where /proc tells processes' start times (Linux); elsewhere no process can be called dead.</summary>
    public static bool CanTell => StartTicksOf(System.Environment.ProcessId) is not null;

    /// <summary>Alive when this host runs a process with this pid and start time; Dead when not; Unknown for another host or without /proc.</summary>
    public OwnerState State()
    {
        if (!string.Equals(Host, System.Environment.MachineName, StringComparison.Ordinal) || !CanTell) return OwnerState.Unknown;
        long? now = StartTicksOf(Pid);
        return now is not null && now == StartTicks ? OwnerState.Alive : OwnerState.Dead;
    }
}

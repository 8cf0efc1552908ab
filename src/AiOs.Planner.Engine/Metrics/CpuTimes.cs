using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using AiOs.Planner.Measurement;

namespace AiOs.Planner.Engine.Metrics;

/// <summary>
/// The machine's busy CPU ticks and the run's processes', read together at one moment (<see cref="CpuTimes.Now"/>); kept in
/// ticks so that a difference of two readings is exact before it becomes seconds.
/// </summary>
/// <param name="MachineBusyTicks">Busy ticks of all cores since boot (<see cref="ProcStat.MachineBusyTicks"/>).</param>
/// <param name="ProcessTicks">Ticks of each of the run's processes since it started, by process id (<see cref="ProcStat.ProcessTicks"/>).</param>
/// <param name="TicksPerSecond">The counters' clock ticks per second (<c>USER_HZ</c>).</param>
/// <param name="Timestamp">When it was read (<see cref="Stopwatch.GetTimestamp"/>).</param>
public sealed record CpuReading(long MachineBusyTicks, IReadOnlyDictionary<int, long> ProcessTicks, long TicksPerSecond, long Timestamp);

/// <summary>
/// Reads the CPU time the machine and the run have spent, so that a run can record how much of the machine other processes
/// used over its steps (<see cref="CpuUse"/>). Linux only: elsewhere, or when <c>/proc</c> cannot be read, null.
/// </summary>
public static partial class CpuTimes
{
    /// <summary><c>_SC_CLK_TCK</c> on Linux (every architecture).</summary>
    private const int ScClockTicks = 2;

    /// <summary>
    /// Both counters now: the machine's, and this process's, or with <paramref name="withSiblings"/> also those of every process
    /// that shares its parent (the other ranks of a data-parallel group, which the launcher started: their work is the run's,
    /// not other work). Null off Linux or when <c>/proc/stat</c>, this process's file or the tick rate cannot be read.
    /// </summary>
    public static CpuReading? Now(bool withSiblings)
    {
        if (!OperatingSystem.IsLinux() || TicksPerSecond() is not { } hz) return null;
        long now = Stopwatch.GetTimestamp();
        if (Read("/proc/stat") is not { } stat || ProcStat.MachineBusyTicks(stat) is not { } machine
            || Read("/proc/self/stat") is not { } self || ProcStat.ProcessTicks(self) is not { } own)
            return null;
        var processes = new Dictionary<int, long> { [System.Environment.ProcessId] = own };
        if (withSiblings && ProcStat.ParentId(self) is { } parent)
            foreach (var (id, ticks) in Children(parent)) processes.TryAdd(id, ticks);
        return new CpuReading(machine, processes, hz, now);
    }

    /// <summary>
    /// What the machine and the run spent between two readings, over the wall time between them; the run's time counts the
    /// processes read both times (one that started or ended in between is left out). Both readings count in the kernel's one
    /// tick rate, which does not change while it runs.
    /// </summary>
    public static CpuUse Between(CpuReading start, CpuReading end)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(end);
        // A process id reused in between reads fewer ticks the second time: its difference is not this run's, so it counts 0.
        long own = end.ProcessTicks.Sum(p => start.ProcessTicks.TryGetValue(p.Key, out long before) ? Math.Max(0, p.Value - before) : 0);
        double hz = end.TicksPerSecond;
        return new CpuUse(Stopwatch.GetElapsedTime(start.Timestamp, end.Timestamp).TotalSeconds, (end.MachineBusyTicks - start.MachineBusyTicks) / hz, own / hz);
    }

    /// <summary>CPU ticks of every process whose parent is <paramref name="parent"/>; one that ends while it is read is skipped.</summary>
    private static IEnumerable<(int Id, long Ticks)> Children(int parent)
    {
        IEnumerable<string> folders;
        try
        {
            folders = Directory.EnumerateDirectories("/proc").ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            yield break;
        }
        foreach (string folder in folders)
        {
            if (!int.TryParse(Path.GetFileName(folder), NumberStyles.None, CultureInfo.InvariantCulture, out int id)) continue;
            if (Read(Path.Combine(folder, "stat")) is { } text && ProcStat.ParentId(text) == parent && ProcStat.ProcessTicks(text) is { } ticks)
                yield return (id, ticks);
        }
    }

    /// <summary>Clock ticks per second of the <c>/proc</c> counters (<c>sysconf(_SC_CLK_TCK)</c>, 100 on nearly every kernel); null when it fails.</summary>
    private static long? TicksPerSecond()
    {
        try
        {
            long hz = SysConf(ScClockTicks);
            return hz > 0 ? hz : null;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    private static string? Read(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    [LibraryImport("libc", EntryPoint = "sysconf")]
    private static partial nint SysConf(int name);
}

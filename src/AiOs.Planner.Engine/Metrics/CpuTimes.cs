using System.Diagnostics;
using System.Runtime.InteropServices;
using AiOs.Planner.Measurement;

namespace AiOs.Planner.Engine.Metrics;

/// <summary>The machine's busy CPU seconds and this process's, read together at one moment (<see cref="CpuTimes.Now"/>).</summary>
/// <param name="MachineBusySeconds">Busy CPU seconds of all cores since boot (<see cref="ProcStat.MachineBusyTicks"/>).</param>
/// <param name="OwnSeconds">This process's CPU seconds since it started (<see cref="ProcStat.ProcessTicks"/>).</param>
/// <param name="Timestamp">When it was read (<see cref="Stopwatch.GetTimestamp"/>).</param>
public readonly record struct CpuReading(double MachineBusySeconds, double OwnSeconds, long Timestamp);

/// <summary>
/// Reads the CPU time the machine and this process have spent, so that a run can record how much of the machine other
/// processes used over its steps (<see cref="CpuUse"/>). Linux only: elsewhere, or when <c>/proc</c> cannot be read, null.
/// </summary>
public static partial class CpuTimes
{
    /// <summary><c>_SC_CLK_TCK</c> on Linux (every architecture).</summary>
    private const int ScClockTicks = 2;

    /// <summary>Both counters now; null off Linux or when either file or the tick rate cannot be read.</summary>
    public static CpuReading? Now()
    {
        if (!OperatingSystem.IsLinux() || TicksPerSecond() is not { } hz) return null;
        long now = Stopwatch.GetTimestamp();
        return Read("/proc/stat") is { } stat && ProcStat.MachineBusyTicks(stat) is { } machine
            && Read("/proc/self/stat") is { } self && ProcStat.ProcessTicks(self) is { } own
            ? new CpuReading(machine / (double)hz, own / (double)hz, now)
            : null;
    }

    /// <summary>What the machine and this process spent between two readings, over the wall time between them.</summary>
    public static CpuUse Between(CpuReading start, CpuReading end) => new(
        Stopwatch.GetElapsedTime(start.Timestamp, end.Timestamp).TotalSeconds,
        end.MachineBusySeconds - start.MachineBusySeconds,
        end.OwnSeconds - start.OwnSeconds);

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

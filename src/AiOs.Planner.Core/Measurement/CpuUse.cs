namespace AiOs.Planner.Measurement;

/// <summary>
/// The CPU time the whole machine and this run spent over the run's steps (from when they started to when the summary was
/// written), so that other processes' work can be told from the run's own: a load average counts both alike, and a heavy
/// offloaded run (CPU Adam workers, NVMe I/O threads) loads every core by itself.
/// </summary>
/// <param name="WallSeconds">Wall seconds of the window.</param>
/// <param name="MachineBusySeconds">
/// CPU seconds every core of the machine spent busy in the window (<c>/proc/stat</c>: user, nice, system, irq, softirq and steal,
/// summed over the cores).
/// </param>
/// <param name="OwnSeconds">
/// CPU seconds the run's process spent in the window (<c>/proc/self/stat</c>: utime and stime, all its threads); for a rank of a
/// data-parallel group, every rank's.
/// </param>
public sealed record CpuUse(double WallSeconds, double MachineBusySeconds, double OwnSeconds)
{
    /// <summary>Cores the run kept busy on average (its CPU seconds ÷ the wall seconds); 0 for an empty window.</summary>
    public double OwnCores => WallSeconds > 0 ? Math.Max(0, OwnSeconds) / WallSeconds : 0;

    /// <summary>
    /// Cores other processes (and the kernel's own threads) kept busy on average: the machine's busy seconds less the run's, ÷ the
    /// wall seconds; 0 for an empty window. Never below 0: the two counters are read a moment apart and tick separately.
    /// </summary>
    public double OtherCores => WallSeconds > 0 ? Math.Max(0, MachineBusySeconds - OwnSeconds) / WallSeconds : 0;
}

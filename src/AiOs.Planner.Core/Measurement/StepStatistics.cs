namespace AiOs.Planner.Measurement;

/// <summary>One measured step as throughput and spread need it: its wall time, its tokens, and whether its loss was finite.</summary>
/// <param name="WallMs">Wall time of the step, milliseconds.</param>
/// <param name="Tokens">Tokens the step trained on.</param>
/// <param name="Finite">False for a step whose loss or gradients were not finite (its update was not applied): kept out of every mean.</param>
public readonly record struct StepSample(double WallMs, long Tokens, bool Finite = true);

/// <summary>How much the wall times of the steps after the first varied, milliseconds.</summary>
/// <param name="Steps">Steps behind the figures.</param>
/// <param name="MinMs">Fastest step.</param>
/// <param name="P10Ms">10th percentile.</param>
/// <param name="P50Ms">Median.</param>
/// <param name="P90Ms">90th percentile.</param>
/// <param name="MaxMs">Slowest step.</param>
public sealed record StepSpread(int Steps, double MinMs, double P10Ms, double P50Ms, double P90Ms, double MaxMs)
{
    /// <summary>p90 ÷ p10: 1 when the steps agree; above <see cref="StepStatistics.MaxSpreadRatio"/> the run was disturbed.</summary>
    public double Ratio => P10Ms > 0 ? P90Ms / P10Ms : 1;
}

/// <summary>
/// The one definition of a run's measured throughput and of how far its step times can be trusted, shared by
/// <c>summary.json</c>, <c>aios train</c>'s tables, the HTML report and the learning history.
/// </summary>
/// <remarks>
/// Throughput is total tokens ÷ total wall time of the steady steps, never the mean of per-step rates: one fast
/// step (a 10 ms step among 1 s ones) would otherwise dominate the figure. The steady steps are those after the
/// first (which pays for warm-up and allocation) whose loss was finite; a run of one step uses that step.
/// </remarks>
public static class StepStatistics
{
    /// <summary>
    /// Largest p90 ÷ p10 of the steady steps before a comparison with a prediction is called unreliable: on a quiet
    /// machine the steps of one run agree within 1.5× (the learning history's widest quiet spread); another process
    /// taking the cores stalls some of them.
    /// </summary>
    public const double MaxSpreadRatio = 1.5;

    /// <summary>The steps the means are taken over: those after the first, with a finite loss (all finite ones when there is only one).</summary>
    public static IReadOnlyList<T> Steady<T>(IReadOnlyList<T> steps, Func<T, bool> finite)
    {
        ArgumentNullException.ThrowIfNull(steps);
        ArgumentNullException.ThrowIfNull(finite);
        var later = steps.Count > 1 ? steps.Skip(1) : steps;
        return later.Where(finite).ToList();
    }

    /// <summary>Total tokens ÷ total wall seconds of the steady steps; 0 when they took no time.</summary>
    public static double TokensPerSecond(IReadOnlyList<StepSample> steps)
    {
        var steady = Steady(steps, s => s.Finite);
        double ms = steady.Sum(s => s.WallMs);
        return ms > 0 ? steady.Sum(s => (double)s.Tokens) / (ms / 1e3) : 0;
    }

    /// <summary>Min, p10, p50, p90 and max of the steady steps' wall times (percentiles interpolated between ranks); null without a steady step.</summary>
    public static StepSpread? Spread(IReadOnlyList<StepSample> steps)
    {
        double[] walls = Steady(steps, s => s.Finite).Select(s => s.WallMs).Order().ToArray();
        if (walls.Length == 0) return null;
        return new StepSpread(walls.Length, walls[0], Percentile(walls, 0.1), Percentile(walls, 0.5), Percentile(walls, 0.9), walls[^1]);
    }

    /// <summary>
    /// Cores of other work, on average over the steps, above which a comparison is called unreliable: half a core, or a tenth
    /// of the machine's cores where that is more. Half a core is a real job, far above what an idle machine's daemons and
    /// shells use, and a quarter of a 2-core machine. On a large machine the run's own work also shows
    /// as other work: the kernel threads that complete its NVMe I/O, write back its files and serve the GPU driver are not its
    /// process's time, and interrupt time is charged to no process; a tenth of the cores (1.6 of 16) leaves room for that.
    /// </summary>
    /// <param name="cores">Logical cores of the machine; 0 when unknown.</param>
    public static double MaxOtherCores(int cores) => Math.Max(0.5, 0.1 * cores);

    /// <summary>
    /// Why a comparison of this run's times with a prediction cannot be trusted: steps that varied more than
    /// <see cref="MaxSpreadRatio"/>, or other work on the machine. Other work is judged by <paramref name="cpu"/>, the CPU time
    /// the machine and the run spent over the steps, when the run recorded it: more than <see cref="MaxOtherCores"/> cores of
    /// other processes. A run without it (recorded before the field, or off Linux) falls back to the load averages: above the
    /// logical core count at the start or end of the run; they count the run's own threads too, so a heavy run alone can
    /// exceed them. Empty when nothing is wrong.
    /// </summary>
    /// <param name="spread">The steady steps' spread (<see cref="Spread"/>); null when there were none.</param>
    /// <param name="cpu">CPU time of the machine and of the run over the steps; null when not recorded.</param>
    /// <param name="loadStart">1-minute load average when the run started; null when unknown.</param>
    /// <param name="loadEnd">1-minute load average when the summary was written; null when unknown.</param>
    /// <param name="cores">Logical cores of the machine the run was on; 0 when unknown.</param>
    public static IReadOnlyList<string> Caveats(StepSpread? spread, CpuUse? cpu, double? loadStart, double? loadEnd, int cores)
    {
        var caveats = new List<string>();
        if (spread is { Steps: > 1 } s && s.Ratio > MaxSpreadRatio)
            caveats.Add(FormattableString.Invariant(
                $"step times after the first varied {s.Ratio:0.0}× (p10 {s.P10Ms:0.#} ms, p90 {s.P90Ms:0.#} ms, min {s.MinMs:0.#} ms, max {s.MaxMs:0.#} ms; a quiet machine stays within {MaxSpreadRatio}×)"));
        if (cpu is not null)
        {
            if (OtherWork(cpu, cores) is { } other) caveats.Add(other);
        }
        else if (LoadAbove(loadStart, loadEnd, cores) is { } load)
        {
            caveats.Add(load);
        }
        return caveats;
    }

    /// <summary>The caveat for other processes' CPU time above <see cref="MaxOtherCores"/>; null when below.</summary>
    private static string? OtherWork(CpuUse cpu, int cores)
    {
        double limit = MaxOtherCores(cores);
        if (cpu.OtherCores <= limit) return null;
        string of = cores > 0 ? FormattableString.Invariant($" of {cores}") : "";
        return FormattableString.Invariant(
            $"other processes kept {cpu.OtherCores:0.0} cores busy on average over the {cpu.WallSeconds:0.#} s of steps (this run used {cpu.OwnCores:0.0}{of}; more than {limit:0.0} cores of other work disturbs the step times; on a virtual machine the hypervisor's steal counts as other work)");
    }

    /// <summary>The load-average caveat of records without <see cref="CpuUse"/>: the higher load above the cores; null otherwise.</summary>
    private static string? LoadAbove(double? loadStart, double? loadEnd, int cores)
    {
        double? load = (loadStart, loadEnd) switch
        {
            ({ } a, { } b) => Math.Max(a, b),
            ({ } a, null) => a,
            (null, { } b) => b,
            _ => null,
        };
        return cores > 0 && load is { } l && l > cores
            ? FormattableString.Invariant(
                $"the 1-minute load average was {l:0.00} on {cores} cores (start {Show(loadStart)}, end {Show(loadEnd)}): other work shared the machine, or the run's own threads loaded it (this record has no CPU times to tell them apart)")
            : null;
    }

    /// <summary>The sentence that goes with non-empty <see cref="Caveats"/>: what they mean for the comparison, and the fix.</summary>
    public static string Unreliable(IReadOnlyList<string> caveats) =>
        "The comparison with the prediction is unreliable: " + string.Join("; ", caveats) + ". Rerun on a quiet machine before trusting the error column.";

    private static string Show(double? load) => load is { } l ? l.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture) : "unknown";

    /// <summary>The <paramref name="q"/> quantile of sorted values, linear between the two nearest ranks.</summary>
    private static double Percentile(double[] sorted, double q)
    {
        double position = q * (sorted.Length - 1);
        int below = (int)Math.Floor(position);
        int above = Math.Min(below + 1, sorted.Length - 1);
        return sorted[below] + (sorted[above] - sorted[below]) * (position - below);
    }
}

using System.Globalization;
using AiOs.Planner.Measurement;

namespace AiOs.Planner.Records;

/// <summary>One quantity predicted and measured (a phase, the step).</summary>
/// <param name="Quantity">What is compared (<c>step time</c>, <c>forward</c>, …).</param>
/// <param name="Predicted">The prediction, in <paramref name="Unit"/>.</param>
/// <param name="Measured">The mean measured value, in <paramref name="Unit"/>.</param>
/// <param name="Unit">The unit of both.</param>
public sealed record ErrorRow(string Quantity, double Predicted, double Measured, string Unit)
{
    /// <summary>(predicted − measured) ÷ measured, or null when nothing was measured.</summary>
    public double? Error => Measured == 0 ? null : (Predicted - Measured) / Measured;
}

/// <summary>A memory tier's predicted peak against what the run measured of it.</summary>
/// <param name="Tier">device, pinned, host, nvme.</param>
/// <param name="PredictedAs">Which predicted figure (so a reader knows what is compared).</param>
/// <param name="MeasuredAs">Which measured figure.</param>
/// <param name="PredictedBytes">The predicted peak.</param>
/// <param name="MeasuredBytes">The highest measured value; null when the run does not measure this tier.</param>
public sealed record TierRow(string Tier, string PredictedAs, string MeasuredAs, long PredictedBytes, long? MeasuredBytes)
{
    /// <summary>(predicted − measured) ÷ measured, or null when not measured (or 0).</summary>
    public double? Error => MeasuredBytes is { } m && m != 0 ? (PredictedBytes - (double)m) / m : null;
}

/// <summary>One operation kind on one resource: time per step predicted and measured, and how many spans made it.</summary>
/// <param name="Operation">The operation kind in snake_case (<c>wait_…</c> for measured stalls, which the simulator does not predict as spans).</param>
/// <param name="Resource">The resource's timeline name.</param>
/// <param name="PredictedMs">Busy time per step, predicted (sum of the predicted step's spans); 0 when not predicted.</param>
/// <param name="MeasuredMs">Busy time per step, measured (mean over the traced steps after the first); null without a trace.</param>
/// <param name="PredictedSpans">Spans per step, predicted.</param>
/// <param name="MeasuredSpans">Spans per step, measured (mean).</param>
public sealed record OperationRow(string Operation, string Resource, double PredictedMs, double? MeasuredMs, int PredictedSpans, double MeasuredSpans)
{
    /// <summary>(predicted − measured) ÷ measured, or null when not measured (or 0).</summary>
    public double? Error => MeasuredMs is { } m && m != 0 ? (PredictedMs - m) / m : null;
}

/// <summary>
/// A run's measurements beside its prediction, as every view shows them (<c>aios train</c>'s tables, <c>aios report</c>, the HTML
/// report): step and phases, memory per tier, and time per operation kind and resource, each with its error; the spread of the step
/// times the means are taken over, and why the comparison is unreliable when it is. Views only render it.
/// </summary>
/// <param name="Rows">Step time and phases (seconds), predicted against the mean of the steady steps; empty without a prediction or a steady step.</param>
/// <param name="Tiers">Memory per tier; empty without a prediction.</param>
/// <param name="Operations">Per operation kind and resource, largest first; empty without a predicted timeline and a trace.</param>
/// <param name="Spread">Wall-time spread of the steps the means are taken over; null without one.</param>
/// <param name="Caveats">Why the comparison cannot be trusted (<see cref="StepStatistics.Caveats"/>); empty when it can.</param>
public sealed record RunComparison(IReadOnlyList<ErrorRow> Rows, IReadOnlyList<TierRow> Tiers, IReadOnlyList<OperationRow> Operations,
    StepSpread? Spread, IReadOnlyList<string> Caveats)
{
    /// <summary>True when the spread or the load says the errors reflect the machine, not the prediction.</summary>
    public bool Unreliable => Caveats.Count > 0;

    /// <summary>The comparison of <paramref name="run"/>.</summary>
    public static RunComparison Of(RecordedRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        return new RunComparison(Phases(run), MemoryTiers(run), PerOperation(run), run.Spread, run.TimingCaveats);
    }

    /// <summary>Step time and phases (the engine's forward, backward, optimizer), predicted against the mean of the steady steps.</summary>
    public static IReadOnlyList<ErrorRow> Phases(RecordedRun run)
    {
        var steady = run.SteadySteps;
        if (steady.Count == 0 || run.Prediction?.Step is not { } p) return [];
        return
        [
            new ErrorRow("step time", p.TimeS, steady.Average(s => s.WallMs) / 1e3, "s"),
            new ErrorRow("forward", p.Phases.ForwardS, steady.Average(s => s.ForwardMs) / 1e3, "s"),
            new ErrorRow("backward", p.Phases.BackwardS, steady.Average(s => s.BackwardMs) / 1e3, "s"),
            new ErrorRow("optimizer", p.Phases.OptimizerS, steady.Average(s => s.OptimizerMs) / 1e3, "s"),
        ];
    }

    /// <summary>
    /// Device (reserved peak vs the driver's peak), pinned host memory, host memory (pinned + pageable vs the peak resident set, which
    /// also holds the runtime), and NVMe (the swap working set vs the swap files' size); a tier neither predicted nor measured is left out.
    /// </summary>
    public static IReadOnlyList<TierRow> MemoryTiers(RecordedRun run)
    {
        if (run.Prediction?.Memory is not { } m) return [];
        var steps = run.Steps;
        long? Max(Func<StepMetrics, long?> f) => steps.Select(f).Where(v => v is not null).DefaultIfEmpty(null).Max();
        long? device = Max(s => s.PeakDeviceBytes) ?? run.Summary?.PeakDeviceBytes;
        long? rss = Max(s => s.PeakResidentBytes is > 0 ? s.PeakResidentBytes : null) ?? (run.Summary?.PeakResidentBytes is > 0 ? run.Summary.PeakResidentBytes : null);
        var rows = new List<TierRow>
        {
            new("device", "reserved peak per GPU", "CUDA driver peak", m.GpuReservedPeakBytes, device),
            new("pinned", "pinned host buffers", "pinned bytes the engine held", m.CpuPinnedBytes, Max(s => s.PinnedBytes)),
            new("host", "pinned + pageable peak", "peak resident set (VmHWM)", m.CpuPeakBytes, rss),
            new("nvme", "swap working set", "swap files on the NVMe folder", m.NvmeBytes, Max(s => s.NvmeSwapBytes) ?? run.Summary?.PeakNvmeSwapBytes),
        };
        return rows.Where(r => r.PredictedBytes > 0 || r.MeasuredBytes is > 0).ToList();
    }

    /// <summary>Busy time per step of each operation kind on each resource: the predicted step's spans against the mean of the traced steps after the first.</summary>
    public static IReadOnlyList<OperationRow> PerOperation(RecordedRun run)
    {
        if (run.PredictedSpans.Count == 0 && run.MeasuredSpans.Count == 0) return [];
        var predicted = run.PredictedSpans.GroupBy(s => (s.Operation, s.Resource))
            .ToDictionary(g => g.Key, g => (Ms: g.Sum(s => s.DurationNs) / 1e6, Count: g.Count()));
        // Steps after the first, as the step means take them: the first pays for warm-up and allocation.
        int[] traced = run.MeasuredSpans.Select(s => s.Step).Distinct().Order().ToArray();
        var steady = (traced.Length > 1 ? traced.Skip(1) : traced).ToHashSet();
        var measured = run.MeasuredSpans.Where(s => steady.Contains(s.Step)).GroupBy(s => (s.Operation, s.Resource))
            .ToDictionary(g => g.Key, g => (Ms: g.Sum(s => s.DurationNs) / 1e6 / steady.Count, Count: g.Count() / (double)steady.Count));
        return predicted.Keys.Union(measured.Keys)
            .Select(k => new OperationRow(k.Operation, k.Resource,
                predicted.TryGetValue(k, out var p) ? p.Ms : 0, steady.Count == 0 ? null : measured.TryGetValue(k, out var q) ? q.Ms : 0,
                predicted.TryGetValue(k, out var pc) ? pc.Count : 0, measured.TryGetValue(k, out var qc) ? qc.Count : 0))
            .OrderByDescending(r => Math.Max(r.PredictedMs, r.MeasuredMs ?? 0)).ThenBy(r => r.Operation, StringComparer.Ordinal).ToList();
    }

    /// <summary>One line on the spread: "step times after the first (n = 3): min … p10 … p50 … p90 … max … ms (p90/p10 1.1×)"; null without steps.</summary>
    public string? SpreadLine => Spread is { } s
        ? string.Create(CultureInfo.InvariantCulture,
            $"Step times after the first (n = {s.Steps}): min {s.MinMs:0.#}, p10 {s.P10Ms:0.#}, p50 {s.P50Ms:0.#}, p90 {s.P90Ms:0.#}, max {s.MaxMs:0.#} ms (p90/p10 {s.Ratio:0.00}×).")
        : null;

    /// <summary>The warning to print beside the tables; null when the comparison is reliable.</summary>
    public string? Warning => Unreliable ? StepStatistics.Unreliable(Caveats) : null;
}

using System.Globalization;
using AiOs.Planner.Measurement;

namespace AiOs.Planner.Reports;

/// <summary>
/// A run's measured times beside its prediction, as every view shows them (<c>aios train</c>'s table, <c>aios report</c>,
/// the HTML report): the error rows, the spread of the step times they are means of, and why the comparison is
/// unreliable when it is.
/// </summary>
/// <param name="Rows">Step time and phases, predicted against measured; empty without a prediction or a steady step.</param>
/// <param name="Spread">Wall-time spread of the steps the means are taken over; null without one.</param>
/// <param name="Caveats">Why the comparison cannot be trusted (<see cref="StepStatistics.Caveats"/>); empty when it can.</param>
public sealed record RunComparison(IReadOnlyList<ErrorRow> Rows, StepSpread? Spread, IReadOnlyList<string> Caveats)
{
    /// <summary>True when the spread or the load says the errors reflect the machine, not the prediction.</summary>
    public bool Unreliable => Caveats.Count > 0;

    /// <summary>The comparison of <paramref name="run"/>.</summary>
    public static RunComparison Of(RunData run)
    {
        ArgumentNullException.ThrowIfNull(run);
        return new RunComparison(HtmlReport.Errors(run), run.Spread, run.TimingCaveats);
    }

    /// <summary>One line on the spread: "step times after the first (n = 3): min … p10 … p50 … p90 … max … ms (p90/p10 1.1×)"; null without steps.</summary>
    public string? SpreadLine => Spread is { } s
        ? string.Create(CultureInfo.InvariantCulture,
            $"Step times after the first (n = {s.Steps}): min {s.MinMs:0.#}, p10 {s.P10Ms:0.#}, p50 {s.P50Ms:0.#}, p90 {s.P90Ms:0.#}, max {s.MaxMs:0.#} ms (p90/p10 {s.Ratio:0.00}×).")
        : null;

    /// <summary>The warning to print beside the table; null when the comparison is reliable.</summary>
    public string? Warning => Unreliable ? StepStatistics.Unreliable(Caveats) : null;
}

using AiOs.Planner.Records;
using AiOs.Planner.Units;
using ScottPlot;

namespace AiOs.Planner.Reports;

/// <summary>Figures of Core's <see cref="RunComparison"/>: predicted beside measured, per phase, per memory tier and per operation. They only draw it.</summary>
public static class ComparisonFigures
{
    /// <summary>Most operation rows drawn (the largest by time); the HTML table lists them all.</summary>
    public const int MaxOperations = 16;

    /// <summary>Phase times side by side: predicted and measured (mean of the steps after the first), with the I/O stall the engine measured.</summary>
    public static Figure Phases(RecordedRun run, RunComparison comparison)
    {
        // Without a prediction (or a steady step) the measured phases are still drawn, beside zeros.
        var rows = comparison.Rows.Where(r => r.Quantity != "step time").ToList();
        var steady = run.SteadySteps;
        double Mean(Func<StepMetrics, double> f) => steady.Count == 0 ? 0 : steady.Average(f) / 1e3;
        string[] names = ["forward", "backward", "optimizer", "I/O stall"];
        double[] measured = [Mean(s => s.ForwardMs), Mean(s => s.BackwardMs), Mean(s => s.OptimizerMs), Mean(s => s.IoStallMs)];
        double[] predicted = new double[names.Length];
        var errors = new double?[names.Length];
        foreach (var row in rows)
        {
            int i = Array.IndexOf(names, row.Quantity);
            (predicted[i], measured[i], errors[i]) = (row.Predicted, row.Measured, row.Error);
        }
        var plot = Pairs(names, predicted, measured, errors);
        plot.Title("Phases of a step: predicted vs measured");
        plot.YLabel("time (s)");
        return new Figure("phases", "Mean phase times of the steps after the first, beside the simulator's phases (the simulator folds I/O waits into the phase they delay); the error is (predicted − measured) ÷ measured.", plot);
    }

    /// <summary>Each memory tier's predicted peak beside the measured figure; null when the comparison has no tier.</summary>
    public static Figure? Tiers(RunComparison comparison)
    {
        if (comparison.Tiers.Count == 0) return null;
        double GiB(long? b) => (b ?? 0) / (double)Bytes.GiBValue;
        var plot = Pairs(comparison.Tiers.Select(t => t.MeasuredBytes is null ? t.Tier + " (not measured)" : t.Tier).ToArray(),
            comparison.Tiers.Select(t => GiB(t.PredictedBytes)).ToArray(), comparison.Tiers.Select(t => GiB(t.MeasuredBytes)).ToArray(),
            comparison.Tiers.Select(t => t.Error).ToArray());
        plot.Title("Memory per tier: predicted peak vs measured");
        plot.YLabel("memory (GiB)");
        string what = string.Join("; ", comparison.Tiers.Select(t => $"{t.Tier}: {t.PredictedAs} vs {t.MeasuredAs}"));
        return new Figure("tiers", $"Peak of each memory tier, predicted beside measured ({what}).", plot);
    }

    /// <summary>Busy time per step of the largest operation kinds per resource, predicted beside measured; null without operations.</summary>
    public static Figure? Operations(RunComparison comparison)
    {
        var rows = comparison.Operations.Take(MaxOperations).ToList();
        if (rows.Count == 0) return null;
        // Horizontal bars, largest at the top: operation names are long, and a column per name would overlap.
        rows.Reverse();
        var plot = Pairs(rows.Select(r => $"{r.Operation} ({r.Resource})").ToArray(), rows.Select(r => r.PredictedMs).ToArray(),
            rows.Select(r => r.MeasuredMs ?? 0).ToArray(), rows.Select(r => r.Error).ToArray(), horizontal: true);
        plot.Title("Time per step by operation and resource: predicted vs measured");
        plot.XLabel("busy time per step (ms)");
        return new Figure("operations", $"Sum of each operation kind's spans on each resource per step (largest {rows.Count}): the predicted step's timeline beside the mean of the traced steps after the first.", plot, 1100, 140 + 34 * rows.Count);
    }

    /// <summary>
    /// A relative error as a bar's label in whole percent with its sign ("+6%", "−12%"), "0%" where it rounds to zero: .NET's
    /// "+0%;-0%" printed "-+0%" for a small negative error, the negative section's sign before the positive one's.
    /// </summary>
    internal static string ErrorLabel(double error)
    {
        double percent = Math.Round(error * 100, MidpointRounding.AwayFromZero);
        return percent == 0 ? "0%" : percent.ToString("+0;-0", System.Globalization.CultureInfo.InvariantCulture) + "%";
    }

    /// <summary>Pairs of bars (predicted, measured) per name, each measured bar labelled with its error.</summary>
    private static Plot Pairs(string[] names, double[] predicted, double[] measured, double?[] errors, bool horizontal = false)
    {
        var plot = new Plot();
        var bars = new List<Bar>();
        for (int i = 0; i < names.Length; i++)
        {
            bars.Add(new Bar { Position = i * 3, Value = predicted[i], FillColor = ReportFigures.Predicted });
            bars.Add(new Bar
            {
                Position = i * 3 + 1, Value = measured[i], FillColor = ReportFigures.Measured,
                Label = errors[i] is { } e ? ErrorLabel(e) : "",
            });
        }
        var series = plot.Add.Bars(bars);
        series.Horizontal = horizontal;
        series.ValueLabelStyle.FontSize = 11;
        var ticks = new ScottPlot.TickGenerators.NumericManual(Enumerable.Range(0, names.Length).Select(i => i * 3 + 0.5).ToArray(), names);
        if (horizontal) plot.Axes.Left.TickGenerator = ticks;
        else plot.Axes.Bottom.TickGenerator = ticks;
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "predicted", FillColor = ReportFigures.Predicted });
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "measured (label: error of the prediction)", FillColor = ReportFigures.Measured });
        // Outside the data: a legend inside would hide the bars (and error labels) beneath it.
        plot.ShowLegend(Edge.Bottom);
        if (horizontal) plot.Axes.Margins(left: 0, right: 0.12);
        else plot.Axes.Margins(bottom: 0, top: 0.15);
        return plot;
    }
}

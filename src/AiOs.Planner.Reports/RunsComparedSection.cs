using System.Globalization;
using System.Text;
using AiOs.Planner.Units;
using ScottPlot;

namespace AiOs.Planner.Reports;

/// <summary>The report's "Runs compared" section: every run's loss per step in one figure, and a table row per run. It only draws <see cref="RunsCompared"/>.</summary>
public static class RunsComparedSection
{
    static RunsComparedSection() => Fonts.Default = "DejaVu Sans";

    /// <summary>The figure's file name (without extension).</summary>
    public const string FigureName = "runs-compared-loss";

    /// <summary>Every run's finite losses per step, one line each, named by its id and the settings that differ.</summary>
    public static Figure Losses(RunsCompared compared)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        for (int i = 0; i < compared.Runs.Count; i++)
        {
            // A step whose loss was not finite has no point: the line stops where the run diverged.
            var steps = compared.Records[i].Steps.Where(s => double.IsFinite(s.Loss)).ToList();
            var line = plot.Add.ScatterLine(steps.Select(s => (double)s.Step).ToArray(), steps.Select(s => s.Loss).ToArray());
            line.LegendText = compared.Runs[i].Label();
            line.Color = palette.GetColor(i);
            line.LineWidth = 1.5f;
        }
        plot.Title("Loss per step: runs compared");
        plot.XLabel("step");
        plot.YLabel("training loss");
        // Outside the data: the labels are long (id and settings), and the curves fill the plot's corners.
        plot.ShowLegend(Edge.Bottom);
        string caption = $"Training loss of every step of each run ({string.Join("; ", compared.Runs.Select(r => r.Label(int.MaxValue)))}).";
        return new Figure(FigureName, caption, plot, 1000, 460 + 22 * compared.Runs.Count);
    }

    /// <summary>The section's HTML before its figure: notes, warnings and the table.</summary>
    public static string Html(RunsCompared compared)
    {
        var t = new StringBuilder("<h2>Runs compared</h2>");
        foreach (string w in compared.Warnings)
            t.Append("<p class=\"warning\" style=\"background:#fff3cd;border:1px solid #e0b000;padding:0.6em\"><strong>Warning:</strong> ").Append(E(w)).Append("</p>");
        foreach (string n in compared.Notes) t.Append("<p class=\"note\"><strong>Note:</strong> ").Append(E(n)).Append("</p>");
        var differing = compared.Runs[0].Differing.Select(d => d.Key).ToList();
        t.Append("<p>").Append(E(differing.Count == 0 ? "The runs' settings.json agree in every setting." : $"Settings that differ: {string.Join(", ", differing)}.")).Append("</p>");
        var runs = compared.Runs;
        bool models = runs.Select(r => r.Model).Distinct().Count() > 1;
        t.Append("<table><tr><th>run</th>").Append(models ? "<th>model (differs)</th>" : "<th>model</th>")
            .Append("<th>steps</th><th>last step's loss</th><th>mean loss of the last steps</th><th>mean vs ")
            .Append(E(runs[0].Id)).Append("</th><th>median step time</th><th>median NVMe read + write per step</th>")
            .Append("<th>median CPU optimizer-state read + write per step</th><th>optimizer state</th><th>seed</th></tr>");
        foreach (var r in runs)
        {
            t.Append("<tr><td>").Append(E(r.Id)).Append("</td><td>").Append(E(r.Model)).Append("</td>")
                .Append(CultureInfo.InvariantCulture, $"<td>{r.Steps}</td><td>{Loss(r.LastLoss)}</td><td>{Loss(r.MeanLoss)} ({E(Window(r))})</td>")
                .Append(CultureInfo.InvariantCulture, $"<td>{(r.MeanLossChange is { } c ? ComparisonTables.Percent(c) : r == runs[0] ? "(reference)" : "–")}</td>")
                .Append(CultureInfo.InvariantCulture, $"<td>{(r.MedianStepMs is { } ms ? (ms / 1e3).ToString("0.####", CultureInfo.InvariantCulture) + " s" : "–")}</td>")
                .Append(CultureInfo.InvariantCulture, $"<td>{Size(r.MedianNvmeBytes)}</td><td>{Size(r.MedianCpuStateBytes)}</td><td>{E(r.OptimizerState)}</td><td>{(r.Seed?.ToString(CultureInfo.InvariantCulture) ?? "not recorded")}</td></tr>");
        }
        t.Append("</table><p>Times and bytes are medians of the steps after the first (the first carries warm-up); the mean loss is over the last ")
            .Append(RunsCompared.LossWindow.ToString(CultureInfo.InvariantCulture))
            .Append(" steps with a finite loss, or all of them in a shorter run, as each row says.</p>");
        return t.ToString();
    }

    /// <summary>One line per run for the console: steps, final losses and the change against the first run.</summary>
    public static IEnumerable<string> Lines(RunsCompared compared) => compared.Runs.Select(r =>
        $"{r.Label()}: {r.Steps} steps, last loss {Loss(r.LastLoss)}, {Window(r)} {Loss(r.MeanLoss)}" +
        (r.MeanLossChange is { } c ? $" ({ComparisonTables.Percent(c)} against {compared.Runs[0].Id})" : ""));

    /// <summary>What the mean loss averages, in words.</summary>
    internal static string Window(ComparedRun r) => r.MeanOver switch
    {
        0 => "no finite loss",
        RunsCompared.LossWindow => $"mean of the last {RunsCompared.LossWindow} steps",
        _ => $"mean of all {r.MeanOver} steps (fewer than {RunsCompared.LossWindow})",
    };

    private static string Loss(double loss) => double.IsFinite(loss) ? loss.ToString("0.####", CultureInfo.InvariantCulture) : "not finite";

    private static string Size(long? bytes) => bytes is { } b ? new Bytes(b).ToString() : "none";

    private static string E(string text) => HtmlReport.E(text);
}

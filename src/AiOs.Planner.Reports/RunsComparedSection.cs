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
            // The first run wide beneath the others, so that a run whose losses match it still shows both.
            line.LineWidth = i == 0 ? 4f : 1.5f;
        }
        plot.Title("Loss per step: runs compared");
        plot.XLabel("step");
        plot.YLabel("training loss");
        // Outside the data: the labels are long (id and settings), and the curves fill the plot's corners.
        plot.ShowLegend(Edge.Bottom);
        string caption = $"Training loss of every step of each run ({string.Join("; ", compared.Runs.Select(r => r.Label(int.MaxValue)))}).";
        return new Figure(FigureName, caption, plot, 1000, 460 + 22 * compared.Runs.Count);
    }

    /// <summary>
    /// Each other run's loss against the first run's at the same step, in percent: the curves of runs within a few percent
    /// of each other lie on one another in <see cref="Losses"/>. Null with one run or no step in common.
    /// </summary>
    public static Figure? Differences(RunsCompared compared)
    {
        var first = compared.Records[0].Steps.Where(s => double.IsFinite(s.Loss) && s.Loss != 0).ToDictionary(s => s.Step, s => s.Loss);
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        bool any = false;
        for (int i = 1; i < compared.Runs.Count; i++)
        {
            var common = compared.Records[i].Steps.Where(s => double.IsFinite(s.Loss) && first.ContainsKey(s.Step)).ToList();
            if (common.Count == 0) continue;
            any = true;
            var line = plot.Add.ScatterLine(common.Select(s => (double)s.Step).ToArray(), common.Select(s => 100 * (s.Loss - first[s.Step]) / first[s.Step]).ToArray());
            line.LegendText = compared.Runs[i].Label();
            line.Color = palette.GetColor(i);
            line.LineWidth = 1.5f;
        }
        if (!any) return null;
        plot.Add.HorizontalLine(0, 1, Colors.Gray, LinePattern.Dotted);
        plot.Title($"Loss against {compared.Runs[0].Id}'s at the same step");
        plot.XLabel("step");
        plot.YLabel($"(loss − {compared.Runs[0].Id}'s) ÷ {compared.Runs[0].Id}'s (%)");
        plot.ShowLegend(Edge.Bottom);
        return new Figure(FigureName + "-difference", $"Each run's loss minus {compared.Runs[0].Label()}'s at the same step, as a percentage of it (steps both runs have, with a finite loss).",
            plot, 1000, 440 + 22 * compared.Runs.Count);
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
            .Append("<th>steps</th><th>last step's loss</th><th>mean loss</th><th>averaged over</th><th>mean vs ")
            .Append(E(runs[0].Id)).Append("</th><th>median step time</th><th>median NVMe read + write per step</th>")
            .Append("<th>median CPU optimizer-state read + write per step</th><th>optimizer state</th><th>seed</th></tr>");
        foreach (var r in runs)
        {
            t.Append("<tr><td>").Append(E(r.Id)).Append("</td><td>").Append(E(r.Model)).Append("</td>")
                .Append(CultureInfo.InvariantCulture, $"<td>{r.Steps}</td><td>{Loss(r.LastLoss)}</td><td>{Loss(r.MeanLoss)}</td><td>{E(Window(r))}</td>")
                .Append(CultureInfo.InvariantCulture, $"<td>{(r.MeanLossChange is { } c ? Percent(c) : r == runs[0] ? "(reference)" : "–")}</td>")
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
        $"{r.Label()}: {r.Steps} steps, last loss {Loss(r.LastLoss)}, mean loss {Loss(r.MeanLoss)} over {Window(r)}" +
        (r.MeanLossChange is { } c ? $" ({Percent(c)} against {compared.Runs[0].Id})" : ""));

    /// <summary>What the mean loss averages, in words.</summary>
    internal static string Window(ComparedRun r) => r.MeanOver switch
    {
        0 => "no step (no finite loss)",
        RunsCompared.LossWindow => $"the last {RunsCompared.LossWindow} steps",
        _ => $"all {r.MeanOver} steps (fewer than {RunsCompared.LossWindow})",
    };

    /// <summary>A loss change as a signed percentage with two decimals (issue 15's bound is 1%); one that rounds to zero is 0.00%, unsigned.</summary>
    public static string Percent(double change) =>
        (Math.Round(change, 4) + 0.0).ToString("+0.00%;-0.00%;0.00%", CultureInfo.InvariantCulture);

    private static string Loss(double loss) => double.IsFinite(loss) ? loss.ToString("0.####", CultureInfo.InvariantCulture) : "not finite";

    private static string Size(long? bytes) => bytes is { } b ? new Bytes(b).ToString() : "none";

    private static string E(string text) => HtmlReport.E(text);
}

using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Records;

namespace AiOs.Planner.Reports;

/// <summary>Writes a self-contained HTML report (figures inline as SVG) and every figure as PNG and SVG.</summary>
public static class HtmlReport
{
    /// <summary>
    /// Writes the report into <paramref name="outDir"/>; returns the path of index.html. With <paramref name="compared"/> (runs
    /// compared with <paramref name="run"/>, the first of them), the report gains a "Runs compared" section.
    /// </summary>
    public static string Write(RecordedRun run, string outDir, RunsCompared? compared = null)
    {
        Directory.CreateDirectory(outDir);
        var figures = ReportFigures.All(run);
        var html = new StringBuilder();
        string title = $"AiOs.Planner run {Path.GetFileName(run.Directory)}";
        html.Append("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>").Append(E(title)).Append("</title><style>")
            .Append("body{font-family:'DejaVu Sans',sans-serif;max-width:1200px;margin:2em auto;color:#222}")
            .Append("table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f3f3f3}")
            .Append("td:first-child,th:first-child{text-align:left}figure{margin:1.5em 0}figcaption{color:#555;font-size:90%}")
            .Append("pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:85%}</style></head><body>");
        html.Append("<h1>").Append(E(title)).Append("</h1>");
        html.Append("<p>").Append(E(Headline(run))).Append("</p>");
        html.Append(RunFacts(run));
        if (compared is not null)
        {
            html.Append(RunsComparedSection.Html(compared)).Append(Embed(RunsComparedSection.Losses(compared), outDir));
            if (RunsComparedSection.Differences(compared) is { } differences) html.Append(Embed(differences, outDir));
        }
        html.Append("<h2>Predicted vs measured</h2>").Append(Comparison(RunComparison.Of(run)));
        html.Append(ComparisonTables.Tiers(RunComparison.Of(run))).Append(ComparisonTables.Operations(RunComparison.Of(run)));
        foreach (var f in figures) html.Append(Embed(f, outDir));
        html.Append("<h2>Settings</h2><pre>").Append(E(run.Settings is null ? "(no settings.json)" : JsonSerializer.Serialize(run.Settings, RecordSchema.WriteOptions))).Append("</pre>");
        if (run.Profile is { } p)
            html.Append("<h2>Hardware profile</h2><pre>").Append(E(JsonSerializer.Serialize(p, DescriptionJson.Options))).Append("</pre>");
        html.Append("</body></html>\n");
        string index = Path.Combine(outDir, "index.html");
        AtomicFile.WriteAllText(index, html.ToString());
        return index;
    }

    /// <summary>Saves a figure as SVG and PNG in <paramref name="outDir"/>; returns it as an HTML figure with the SVG inline.</summary>
    private static string Embed(Figure f, string outDir)
    {
        string svg = f.Plot.GetSvgXml(f.Width, f.Height);
        File.WriteAllText(Path.Combine(outDir, f.Name + ".svg"), svg);
        f.Plot.SavePng(Path.Combine(outDir, f.Name + ".png"), f.Width, f.Height);
        return $"<figure>{svg}<figcaption>{E(f.Caption)}</figcaption></figure>";
    }

    private static string Headline(RecordedRun run)
    {
        var steady = run.SteadySteps;
        // Throughput is StepStatistics' one definition (total tokens ÷ total time), the figure summary.json and aios train show.
        string measured = steady.Count == 0 ? "no step finished" : string.Create(CultureInfo.InvariantCulture,
            $"{run.Steps.Count} steps, {steady.Average(s => s.WallMs) / 1e3:0.###} s per step measured ({run.TokensPerSecond:N0} tokens/s), loss {Losses(run)}");
        string predicted = run.Prediction?.Step is { } p
            ? string.Create(CultureInfo.InvariantCulture, $"; predicted {p.TimeS:0.###} s, bottleneck {p.Bottleneck}")
            : "; no prediction stored with this run";
        return measured + predicted + ".";
    }

    /// <summary>First and last finite loss, and the step whose loss was not finite, if one was.</summary>
    private static string Losses(RecordedRun run)
    {
        var finite = run.Steps.Where(s => double.IsFinite(s.Loss)).ToList();
        string range = finite.Count == 0 ? "not finite in any step"
            : string.Create(CultureInfo.InvariantCulture, $"{finite[0].Loss:0.###} → {finite[^1].Loss:0.###}");
        return run.Steps.FirstOrDefault(s => !s.Finite) is { } bad ? $"{range} (step {bad.Step} was not finite)" : range;
    }

    /// <summary>What the run's summary says (model, dataset, executor, error, warnings) and what loading it skipped; every text escaped.</summary>
    private static string RunFacts(RecordedRun run)
    {
        var t = new StringBuilder();
        var summary = run.Summary;
        var facts = new[] { ("model", summary?.Model), ("dataset", summary?.Dataset), ("executor", summary?.Executor), ("last checkpoint", summary?.LastCheckpoint) }
            .Where(f => f.Item2 is not null).ToList();
        if (facts.Count > 0)
        {
            t.Append("<table>");
            foreach (var (name, value) in facts) t.Append("<tr><th>").Append(E(name)).Append("</th><td>").Append(E(value!)).Append("</td></tr>");
            t.Append("</table>");
        }
        if (summary?.Error is { } error) t.Append("<p><strong>The run stopped with an error:</strong> ").Append(E(error)).Append("</p>");
        var warnings = run.Warnings.Concat(summary?.Warnings ?? []).ToList();
        if (warnings.Count > 0)
        {
            t.Append("<h2>Warnings</h2><ul>");
            foreach (string w in warnings) t.Append("<li>").Append(E(w)).Append("</li>");
            t.Append("</ul>");
        }
        return t.ToString();
    }

    /// <summary>The error table, with the spread of the steps behind it and, when the spread or the load was large, a warning first.</summary>
    private static string Comparison(RunComparison c)
    {
        var t = new StringBuilder();
        if (c.Warning is { } warning)
        {
            t.Append("<p class=\"unreliable\" style=\"background:#fff3cd;border:1px solid #e0b000;padding:0.6em\"><strong>Unreliable:</strong> ").Append(E(warning)).Append("</p>");
        }
        t.Append(ErrorTable(c.Rows));
        if (c.SpreadLine is { } spread) t.Append("<p>").Append(E(spread)).Append("</p>");
        return t.ToString();
    }

    private static string ErrorTable(IReadOnlyList<ErrorRow> rows)
    {
        if (rows.Count == 0) return "<p>No prediction or no finished step: nothing to compare.</p>";
        var t = new StringBuilder("<table><tr><th>quantity</th><th>predicted</th><th>measured</th><th>error</th></tr>");
        foreach (var r in rows)
            t.Append(CultureInfo.InvariantCulture, $"<tr><td>{E(r.Quantity)}</td><td>{r.Predicted:0.####} {E(r.Unit)}</td><td>{r.Measured:0.####} {E(r.Unit)}</td><td>{(r.Error is { } e ? e.ToString("+0.0%;-0.0%", CultureInfo.InvariantCulture) : "–")}</td></tr>");
        return t.Append("</table>").ToString();
    }

    internal static string E(string text) => WebUtility.HtmlEncode(text);
}

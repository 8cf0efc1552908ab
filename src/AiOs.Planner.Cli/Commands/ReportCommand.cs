using System.CommandLine;
using AiOs.Planner.Cli.Rendering;
using AiOs.Planner.Records;
using AiOs.Planner.Reports;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary><c>aios report RUN_DIR [--compare OTHER_RUN_DIR]…</c>: a self-contained HTML report of a run, predicted beside measured, and beside other runs.</summary>
public static class ReportCommand
{
    public static Command Create(CliIo io)
    {
        var runDir = new Argument<string>("run-dir") { Description = "A run folder written by `aios train` (runs/<id>)" };
        var output = new Option<string?>("--out", "-o") { Description = "Folder for index.html and the PNG and SVG figures (default: RUN_DIR/report)" };
        var compare = new Option<string[]>("--compare") { Description = "Another run folder to compare with RUN_DIR: losses per step in one figure and a table (repeatable; train them from one seed)", AllowMultipleArgumentsPerToken = false };
        var command = new Command("report", "Write an HTML report of a run: step times, phases, timelines, memory, NVMe throughput, errors.") { runDir, output, compare };
        command.SetAction(r =>
        {
            string[] others = r.GetValue(compare) ?? [];
            // Every folder is checked before anything is written: a bad --compare folder leaves no half-made report.
            var run = others.Length == 0 ? RecordedRun.Load(r.GetValue(runDir)!) : RunsCompared.Load(r.GetValue(runDir)!, "RUN_DIR");
            var compared = others.Length == 0 ? null : RunsCompared.Of(run, others.Select(o => RunsCompared.Load(o)).ToList());
            foreach (var loaded in compared?.Records ?? [run])
                foreach (string w in loaded.Warnings) io.Errors.MarkupLineInterpolated($"[yellow]warning:[/] {(loaded == run ? "" : loaded.Directory + ": ")}{w}");
            string outDir = r.GetValue(output) ?? Path.Combine(run.Directory, "report");
            string index = HtmlReport.Write(run, outDir, compared);
            var comparison = RunComparison.Of(run);
            foreach (var row in comparison.Rows)
                io.Console.MarkupLineInterpolated($"{row.Quantity}: predicted {row.Predicted:0.###} {row.Unit}, measured {row.Measured:0.###} {row.Unit}, error {ComparisonRendering.Percent(row.Error)}");
            foreach (var tier in comparison.Tiers)
                io.Console.MarkupLineInterpolated($"{tier.Tier} memory: predicted {new Units.Bytes(tier.PredictedBytes)}, measured {(tier.MeasuredBytes is { } m ? new Units.Bytes(m).ToString() : "not measured")}, error {ComparisonRendering.Percent(tier.Error)}");
            if (comparison.SpreadLine is { } spread) io.Console.MarkupLineInterpolated($"{spread}");
            if (comparison.Warning is { } warning) io.Errors.MarkupLineInterpolated($"[yellow]warning:[/] {warning}");
            if (compared is not null)
            {
                foreach (string line in RunsComparedSection.Lines(compared)) io.Console.MarkupLineInterpolated($"{line}");
                foreach (string note in compared.Notes) io.Console.MarkupLineInterpolated($"note: {note}");
                foreach (string w in compared.Warnings) io.Errors.MarkupLineInterpolated($"[yellow]warning:[/] {w}");
            }
            io.Console.MarkupLineInterpolated($"Wrote {index}.");
            return ExitCodes.Ok;
        });
        return command;
    }
}

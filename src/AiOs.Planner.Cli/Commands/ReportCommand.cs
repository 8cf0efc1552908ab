using System.CommandLine;
using AiOs.Planner.Cli.Rendering;
using AiOs.Planner.Records;
using AiOs.Planner.Reports;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary><c>aios report RUN_DIR</c>: a self-contained HTML report of a run, predicted beside measured.</summary>
public static class ReportCommand
{
    public static Command Create(CliIo io)
    {
        var runDir = new Argument<string>("run-dir") { Description = "A run folder written by `aios train` (runs/<id>)" };
        var output = new Option<string?>("--out", "-o") { Description = "Folder for index.html and the PNG and SVG figures (default: RUN_DIR/report)" };
        var command = new Command("report", "Write an HTML report of a run: step times, phases, timelines, memory, NVMe throughput, errors.") { runDir, output };
        command.SetAction(r =>
        {
            var run = RecordedRun.Load(r.GetValue(runDir)!);
            foreach (string w in run.Warnings) io.Errors.MarkupLineInterpolated($"[yellow]warning:[/] {w}");
            string outDir = r.GetValue(output) ?? Path.Combine(run.Directory, "report");
            string index = HtmlReport.Write(run, outDir);
            var comparison = RunComparison.Of(run);
            foreach (var row in comparison.Rows)
                io.Console.MarkupLineInterpolated($"{row.Quantity}: predicted {row.Predicted:0.###} {row.Unit}, measured {row.Measured:0.###} {row.Unit}, error {ComparisonRendering.Percent(row.Error)}");
            foreach (var tier in comparison.Tiers)
                io.Console.MarkupLineInterpolated($"{tier.Tier} memory: predicted {new Units.Bytes(tier.PredictedBytes)}, measured {(tier.MeasuredBytes is { } m ? new Units.Bytes(m).ToString() : "not measured")}, error {ComparisonRendering.Percent(tier.Error)}");
            if (comparison.SpreadLine is { } spread) io.Console.MarkupLineInterpolated($"{spread}");
            if (comparison.Warning is { } warning) io.Errors.MarkupLineInterpolated($"[yellow]warning:[/] {warning}");
            io.Console.MarkupLineInterpolated($"Wrote {index}.");
            return ExitCodes.Ok;
        });
        return command;
    }
}

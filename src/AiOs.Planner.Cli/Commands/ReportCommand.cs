using System.CommandLine;
using AiOs.Planner.Cli.Rendering;
using AiOs.Planner.Hardware;
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
        var hardware = new Option<string?>("--hardware") { Description = "Compare against a prediction made now on this profile (name or path) instead of the one the run was started with, e.g. when the run was planned on the wrong machine's profile; the run folder is not changed" };
        var command = new Command("report", "Write an HTML report of a run: step times, phases, timelines, memory, NVMe throughput, errors.") { runDir, output, compare, hardware };
        command.SetAction(r =>
        {
            string[] others = r.GetValue(compare) ?? [];
            // Every folder is checked before anything is written: a bad --compare folder leaves no half-made report.
            var run = others.Length == 0 ? RecordedRun.Load(r.GetValue(runDir)!) : RunsCompared.Load(r.GetValue(runDir)!, "RUN_DIR");
            var compared = others.Length == 0 ? null : RunsCompared.Of(run, others.Select(o => RunsCompared.Load(o)).ToList());
            foreach (var loaded in compared?.Records ?? [run])
                foreach (string w in loaded.Warnings.Concat(loaded.Summary?.Warnings ?? []))
                    io.Errors.MarkupLineInterpolated($"[yellow]warning:[/] {(loaded == run ? "" : loaded.Directory + ": ")}{w}");
            string outDir = r.GetValue(output) ?? Path.Combine(run.Directory, "report");
            if (r.GetValue(hardware) is { } profileName)
            {
                run = Repredicted(run, ProfileCatalog.Default.Load(profileName), Path.Combine(outDir, "prediction"));
                io.Errors.MarkupLineInterpolated($"[grey]note:[/] predicted now on {run.Profile!.Name} (written to {Path.Combine(outDir, "prediction")}); the run was started with the prediction in {Path.Combine(run.Directory, RecordedRun.PredictionFile)}");
            }
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

    /// <summary>
    /// <paramref name="run"/> with its prediction made again from its recorded model and settings on <paramref name="profile"/>
    /// (under the run's GPU memory limit), written to <paramref name="folder"/> as <c>train</c> writes one; the run folder is not touched.
    /// </summary>
    private static RecordedRun Repredicted(RecordedRun run, Hardware.HardwareProfile profile, string folder)
    {
        var recorded = run.Settings ?? throw new Descriptions.DescriptionException(
            $"{run.Directory} has no settings.json, so its settings cannot be planned again on another profile; leave out --hardware.") { File = run.Directory };
        var limit = run.Summary?.GpuMemoryLimitBytes is long bytes ? new Units.Bytes(bytes) : (Units.Bytes?)null;
        var hw = Planning.GpuMemoryLimit.Apply(profile, limit);
        Planning.RunPrediction.Write(folder, recorded.Model, hw, recorded.Settings, Calibration.Learning.LearnedCorrection.For(hw));
        var timeline = RecordedRun.ReadTimeline(Path.Combine(folder, RecordedRun.TimelineFile), new List<string>());
        return run with
        {
            Prediction = RecordedRun.ReadPlan(Path.Combine(folder, RecordedRun.PredictionFile)),
            PredictedSpans = timeline.Spans,
            PredictedMemory = timeline.Memory,
            Profile = hw,
        };
    }
}

using System.CommandLine;
using System.Text.Json.Nodes;
using AiOs.Planner.Calibration;
using AiOs.Planner.Calibration.Learning;
using AiOs.Planner.Cli.Rendering;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Hardware;
using AiOs.Planner.Learning;
using AiOs.Planner.Reports;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary><c>aios learn</c>: learn a correction of the simulator's phase times from past runs and store it in a profile.</summary>
public static class LearnCommand
{
    /// <summary>The command, writing through <paramref name="io"/>.</summary>
    public static Command Create(CliIo io)
    {
        var fromRuns = new Option<string>("--from-runs") { Description = "Folder of run folders (the --runs-dir of `aios train`)", Required = true };
        var profile = new Option<string>("--profile") { Description = "Profile (bundled name or path) the runs were predicted with; the correction is added to it", Required = true };
        var output = new Option<string?>("--out") { Description = "Profile file to write with the learned correction section" };
        var trainer = new Option<CorrectionTrainerKind>("--trainer") { Description = "auto (SDCA below 30 runs, FastTree from 30) | sdca | fasttree", DefaultValueFactory = _ => CorrectionTrainerKind.Auto };
        var folds = new Option<int?>("--cross-validate") { Description = "Also run k-fold cross-validation with this many folds and print the error before and after" };
        var seed = new Option<int>("--seed") { Description = "Seed of the trainers and of the fold assignment", DefaultValueFactory = _ => 1 };
        var json = new Option<bool>("--json") { Description = "Print one JSON document (runs, skipped, cross-validation) on stdout" };
        var command = new Command("learn", "Learn measured ÷ predicted per phase from past runs (an ML.NET regression) and store it in the profile; the simulator then applies it.")
        {
            fromRuns, profile, output, trainer, folds, seed, json,
        };
        command.SetAction(r =>
        {
            string? outPath = r.GetValue(output);
            int? k = r.GetValue(folds);
            if (outPath is null && k is null)
            {
                io.Errors.MarkupLine("[red]error:[/] give --out (write the corrected profile), --cross-validate K, or both.");
                return ExitCodes.Usage;
            }
            var baseProfile = ProfileCatalog.Default.Load(r.GetValue(profile)!);
            string root = r.GetValue(fromRuns)!;
            var (runs, skipped) = RunHistory.Load(root);
            bool asJson = r.GetValue(json);
            var options = new LearnOptions { Trainer = r.GetValue(trainer), Seed = r.GetValue(seed), Date = DateTime.UtcNow.ToString("yyyy-MM-dd") };
            CrossValidationResult? cv = null;
            HardwareProfile? learned = null;
            string? error = null;
            try
            {
                if (runs.Count == 0) throw new CalibrationException(NoUsableRun(root, skipped.Count));
                cv = k is { } f ? CorrectionCrossValidation.Run(runs, f, options) : null;
                if (outPath is not null)
                {
                    learned = baseProfile with { Correction = CorrectionLearner.Learn(runs, options) };
                    ProfileWriter.WriteFile(outPath, learned);
                }
            }
            catch (CalibrationException e)
            {
                error = e.Message;
            }
            // The history is shown whether or not learning succeeded: a refusal must say what each run folder was.
            if (asJson) io.Stdout.Write(DeepSpeedConfig.ToJson(Json(runs, skipped, cv, learned, outPath, error)));
            else Render(io.Console, runs, skipped, cv, learned, outPath);
            if (error is null) return ExitCodes.Ok;
            // Errors go to stderr; with --json the document's "error" says it too, and stdout carries nothing else.
            io.Errors.MarkupLineInterpolated($"[red]error:[/] {error}");
            return runs.Count == 0 ? ExitCodes.Infeasible : ExitCodes.Usage;
        });
        return command;
    }

    /// <summary>Why nothing can be learned from <paramref name="root"/>: no run folder at all, or every one left out (listed with its reason).</summary>
    internal static string NoUsableRun(string root, int skipped) => skipped == 0
        ? $"{Path.GetFullPath(root)} holds no run folders: train a few with `aios train --runs-dir {root} --hardware PROFILE` first."
        : $"none of the {skipped} entries under {Path.GetFullPath(root)} is a usable run (each is listed with its reason): " +
          "a run needs a prediction.json (train with --hardware PROFILE), at least two steps, and steps after the first that agree within " +
          $"{RunHistory.MaxStepSpread}× (rerun disturbed ones on a quiet machine).";

    private static void Render(IAnsiConsole console, IReadOnlyList<RunObservation> runs, IReadOnlyList<string> skipped, CrossValidationResult? cv, HardwareProfile? learned, string? outPath)
    {
        console.MarkupLineInterpolated($"History: {runs.Count} runs used, {skipped.Count} skipped.");
        foreach (var run in runs) console.MarkupLineInterpolated($"  [green]used[/] {run.RunId}");
        foreach (string s in skipped) console.MarkupLineInterpolated($"  [yellow]skipped[/] {s}");
        if (cv is not null)
        {
            var table = new Table().AddTextColumns("quantity", "mean error uncorrected", "mean error corrected", "median uncorrected", "median corrected");
            table.TextTitle($"{cv.Folds}-fold cross-validation ({cv.Trainer}): |predicted − measured| ÷ measured over held-out runs");
            foreach (var e in cv.Errors) table.AddTextRow(e.Quantity, $"{e.Uncorrected:P1}", $"{e.Corrected:P1}", $"{e.MedianUncorrected:P1}", $"{e.MedianCorrected:P1}");
            console.Write(table);
            console.MarkupLineInterpolated($"{cv.FallBacks} of {cv.Runs.Count} held-out runs fell outside their training folds' range and kept the uncorrected prediction.");
        }
        if (learned?.Correction is { } c) console.MarkupLineInterpolated($"Wrote {outPath}: correction ({c.Trainer}, {c.Runs} runs) for {learned.Name}.");
    }

    private static JsonObject Json(IReadOnlyList<RunObservation> runs, IReadOnlyList<string> skipped, CrossValidationResult? cv, HardwareProfile? learned, string? outPath, string? error) => new()
    {
        ["runs"] = runs.Count,
        ["used"] = new JsonArray(runs.Select(r => (JsonNode)JsonValue.Create(r.RunId)!).ToArray()),
        ["skipped"] = new JsonArray(skipped.Select(s => (JsonNode)JsonValue.Create(s)!).ToArray()),
        ["error"] = error,
        ["written"] = learned is null ? null : outPath,
        ["trainer"] = learned?.Correction?.Trainer,
        ["cross_validation"] = cv is null ? null : new JsonObject
        {
            ["folds"] = cv.Folds,
            ["trainer"] = cv.Trainer,
            ["fall_backs"] = cv.FallBacks,
            ["held_out"] = new JsonArray(cv.Runs.Select(h => (JsonNode)new JsonObject
            {
                ["run_id"] = h.RunId, ["fold"] = h.Fold, ["measured_s"] = h.Measured.Total, ["uncorrected_s"] = h.Uncorrected.Total,
                ["corrected_s"] = h.Corrected.Total, ["fallback_reason"] = h.FallbackReason,
            }).ToArray()),
            ["errors"] = new JsonArray(cv.Errors.Select(e => (JsonNode)new JsonObject
            {
                ["quantity"] = e.Quantity, ["uncorrected"] = e.Uncorrected, ["corrected"] = e.Corrected,
                ["median_uncorrected"] = e.MedianUncorrected, ["median_corrected"] = e.MedianCorrected,
            }).ToArray()),
        },
    };
}

using System.CommandLine;
using System.Globalization;
using AiOs.Planner.Calibration;
using AiOs.Planner.Calibration.Compute;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary>
/// <c>aios fit-eager</c>: fit the <c>deepspeed</c> executor's compute constants to measured PyTorch eager steps on some
/// rows and report the error on the others (issue 13's validation of that executor).
/// </summary>
public static class FitEagerCommand
{
    public static Command Create(CliIo io)
    {
        var baselines = new Option<string>("--baselines") { Description = "JSON-lines file of tools/bench/torch_baselines.py (rows with impl torch-eager)", Required = true };
        var hardware = new Option<string>("--hardware", "-H") { Description = "Profile (bundled name or path) of the GPU the baselines ran on", Required = true };
        var fitModels = new Option<string?>("--fit-models") { Description = $"Comma-separated models whose rows are fitted; the rest only test (default {string.Join(',', EagerSplit.DefaultFitModels)})" };
        var fitEvery = new Option<int?>("--fit-every") { Description = "Instead of --fit-models: fit rows 1, K+1, 2K+1… of the usable rows (file order), test the rest; K ≥ 2" };
        var json = new Option<bool>("--json") { Description = "Print one JSON document (fitted constants, rows, errors, targets) on stdout" };
        var output = new Option<string?>("--out", "-o") { Description = "Write that JSON document to this file (atomically)" };
        var writeProfile = new Option<string?>("--write-profile") { Description = "Write the --hardware profile with the fitted constants as its gpu.eager_compute section to this file (atomically; may be the profile itself)" };
        var command = new Command("fit-eager", "Fit the deepspeed executor's compute constants (ComputeModel) to measured PyTorch eager steps on fit rows, and report the error on test rows it never saw.")
        {
            baselines, hardware, fitModels, fitEvery, json, output, writeProfile,
        };
        command.SetAction(r =>
        {
            bool asJson = r.GetValue(json);
            try
            {
                var split = Split(r.GetValue(fitModels), r.GetValue(fitEvery));
                var profile = ProfileCatalog.Default.Load(r.GetValue(hardware)!);
                string path = r.GetValue(baselines)!;
                var file = EagerBaselineReader.Read(path);
                if (file.Rows.Count == 0)
                    throw new CalibrationException($"{path} has no usable rows ({file.Skipped.Count} lines skipped: another impl, or a failed run): it needs lines with \"impl\":\"{EagerBaselineReader.TorchEager}\" and no \"error\"; run tools/bench/torch_baselines.py on the GPU first.");
                var rows = EagerStepPredictor.Prepare(file.Rows, profile, ModelCatalog.Default.Load);
                var result = EagerBaselineFit.Fit(rows, profile, split);
                var document = EagerFitDocument.Build(result, path, profile.Name, file.Skipped);
                if (r.GetValue(output) is { } outPath) Write(outPath, document);
                string? profilePath = r.GetValue(writeProfile);
                if (profilePath is not null)
                    WriteProfile(profilePath, EagerComputeSection.Apply(profile, EagerComputeSection.Of(result, path, DateTime.UtcNow.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture))));
                if (asJson) io.Stdout.Write(EagerFitDocument.ToText(document));
                else Render(io.Console, result, profile.Name, file.Skipped, r.GetValue(output), profilePath);
                return ExitCodes.Ok;
            }
            catch (CalibrationException e)
            {
                io.Errors.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
                return ExitCodes.Usage;
            }
        });
        return command;
    }

    /// <summary>Writes --out atomically; a failure names the flag and the file (the old file, if any, is kept).</summary>
    private static void Write(string path, System.Text.Json.Nodes.JsonObject document)
    {
        try
        {
            EagerFitDocument.WriteFile(path, document);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"--out {path}: could not write the fit ({e.Message}); choose a writable path. Nothing was written there.", e);
        }
    }

    /// <summary>Writes --write-profile atomically after validating it; a failure names the flag and the file (the old file, if any, is kept).</summary>
    private static void WriteProfile(string path, HardwareProfile profile)
    {
        try
        {
            EagerComputeSection.WriteProfile(path, profile);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"--write-profile {path}: could not write the profile ({e.Message}); choose a writable path. Nothing was written there.", e);
        }
    }

    /// <summary>The split the flags ask for; both at once, an empty list or K below 2 are refused.</summary>
    private static EagerSplit Split(string? fitModels, int? fitEvery)
    {
        if (fitModels is not null && fitEvery is not null)
            throw new CalibrationException("--fit-models and --fit-every both choose the fit rows; give one of them.");
        if (fitEvery is { } k)
            return k >= 2 ? new EagerSplit { FitEvery = k } : throw new CalibrationException($"--fit-every {k} would fit every row and test none; give K ≥ 2.");
        if (fitModels is null) return new EagerSplit();
        var names = fitModels.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return names.Length > 0 ? new EagerSplit { FitModels = names } : throw new CalibrationException("--fit-models is empty; name the models to fit on, e.g. --fit-models gpt2,gpt2-xl.");
    }

    private static void Render(IAnsiConsole console, EagerFitResult result, string hardware, IReadOnlyList<string> skipped, string? outPath, string? profilePath)
    {
        foreach (string s in skipped) console.MarkupLineInterpolated($"[grey]skipped[/] {s}");
        var rows = new Table().Title(Markup.Escape($"PyTorch eager on {hardware} against the deepspeed executor ({result.Split.Describe()})"))
            .AddColumns("model", "mb", "precision", "ckpt", "measured ms", "start ms", "fitted ms", "error", "role");
        foreach (var r in result.Rows)
        {
            var b = r.Baseline;
            rows.AddRow(Markup.Escape(b.Model), I($"{b.MicroBatch}"), b.Precision == Precision.Fp32 ? "fp32" : "bf16", b.Checkpointing ? "yes" : "no",
                I($"{b.MedianMs:0.0}"), I($"{r.DefaultMs:0.0}"), I($"{r.FittedMs:0.0}"),
                I($"{r.Error:+0.0%;-0.0%}"), r.Role == EagerRole.Fit ? "fit" : "[bold]test[/]");
        }
        console.Write(rows);
        console.MarkupLine("start ms: predicted with the constants the fit starts from (the defaults); fitted ms: with the fitted ones; the error column is fitted ÷ measured − 1.");
        var constants = new Table().Title(I($"Compute constants ({result.Evaluations} evaluations; MemoryEfficiency and StepOverhead kept)")).AddColumns("constant", "start", "fitted");
        void Row(string name, Func<ComputeModel, string> value) => constants.AddRow(name, value(result.Start), value(result.Fitted));
        Row("MatmulHalfRateHidden", m => I($"{m.MatmulHalfRateHidden:0.#}"));
        Row("ElementwiseTraffic", m => I($"{m.ElementwiseTraffic:0.###}"));
        Row("MemoryEfficiency", m => I($"{m.MemoryEfficiency:0.###}"));
        Row("LayerOverhead", m => I($"{m.LayerOverhead.Nanoseconds / 1e3:0.#} µs"));
        Row("LayerLaunchFloor", m => I($"{m.LayerLaunchFloor.Nanoseconds / 1e3:0.#} µs"));
        Row("RecomputeLaunchFloors", m => I($"{m.RecomputeLaunchFloors:0.##}"));
        Row("StepOverhead", m => I($"{m.StepOverhead.Nanoseconds / 1e3:0.#} µs"));
        console.Write(constants);
        var (fit, test, start) = (result.Fit, result.Test, result.TestWithStart);
        console.MarkupLine(I($"fit rows ({fit.Count}): median |error| {fit.MedianAbs:0.0%}, max {fit.MaxAbs:0.0%}"));
        console.MarkupLine(I($"test rows ({test.Count}, not used by the fit): median |error| {test.MedianAbs:0.0%}, max {test.MaxAbs:0.0%} (start constants: {start.MedianAbs:0.0%}, {start.MaxAbs:0.0%})"));
        bool medianMet = test.MedianAbs <= EagerFitResult.MedianTarget, maxMet = test.MaxAbs <= EagerFitResult.MaxTarget;
        console.MarkupLine(I($"targets on test rows: median ≤ {EagerFitResult.MedianTarget:0%} {Verdict(medianMet)}, max ≤ {EagerFitResult.MaxTarget:0%} {Verdict(maxMet)}"));
        if (outPath is not null) console.MarkupLineInterpolated($"Wrote {outPath}.");
        if (profilePath is not null) console.MarkupLineInterpolated($"Wrote {profilePath} (the profile with gpu.eager_compute: the fitted constants, measured, with the split and test errors in each method).");
    }

    private static string Verdict(bool met) => met ? "[green]met[/]" : "[red]not met[/]";

    private static string I(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}

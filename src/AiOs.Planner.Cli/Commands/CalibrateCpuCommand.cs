using System.CommandLine;
using System.Text.Json;
using AiOs.Planner.Calibration.Compute;
using AiOs.Planner.Cli.Rendering;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Engine.Probes;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Units;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary>
/// <c>aios calibrate-cpu</c>: time matmuls and decoder layers on the CPU with TorchSharp, fit the CPU compute
/// model's constants, and write them into a profile's CPU section, keeping every other figure.
/// </summary>
public static class CalibrateCpuCommand
{
    public static Command Create(CliIo io)
    {
        var output = new Option<string>("--out", "-o") { Description = "Profile file to write (updated in place when it exists)", Required = true };
        var baseProfile = new Option<string?>("--base") { Description = "Profile to start from when --out does not exist yet (name or path)" };
        var family = new Option<string>("--family") { Description = "Model whose layer kind is timed (its hidden size is varied)", DefaultValueFactory = _ => "gpt2" };
        var repeats = new Option<int>("--repeats") { Description = "Timed repeats per sample (the median is kept)", DefaultValueFactory = _ => 5 };
        var json = new Option<bool>("--json") { Description = "Print the samples and the fit as JSON on stdout" };
        var force = new Option<bool>("--force") { Description = $"Write the profile even when the layer fit is unusable (R² below {CpuFitQuality.RefuseBelow}: the machine was busy)" };
        var command = new Command("calibrate-cpu", "Time matmuls and decoder layers on the CPU (TorchSharp), fit the CPU compute model (matmul rate and efficiency in layers, element-wise rate, per-layer overhead, backward ratio) and write it into a profile.")
            { output, baseProfile, family, repeats, json, force };
        command.SetAction(r =>
        {
            string path = r.GetValue(output)!;
            var profile = File.Exists(path) ? ProfileCatalog.LoadFile(path)
                : r.GetValue(baseProfile) is { } b ? ProfileCatalog.Default.Load(b)
                : throw new DescriptionException($"{path} does not exist; give --base PROFILE to start from (e.g. the profile `aios calibrate` wrote).");
            var model = ModelCatalog.Default.Load(r.GetValue(family)!);
            bool quiet = r.GetValue(json);
            var m = CpuComputeProbe.Measure(new CpuComputeProbeOptions { Family = model, Repeats = Math.Max(1, r.GetValue(repeats)) },
                quiet ? null : line => io.Console.WriteLine(line));
            var timings = m.Layers.Select(s => new LayerTiming(s.Flops, s.SavedBytes, s.Hidden, s.IsBackward, s.Seconds,
                $"{s.Unit} {s.Pass} h={s.Hidden} {s.MicroBatch}×{s.SeqLen}")).ToList();
            double fp32 = m.BestGflops("fp32"), bf16 = m.BestGflops("bf16");
            var fit = CpuLayerFit.Fit(timings, new FlopRate(fp32 * 1e9));
            var calibration = new CpuComputeCalibration(fp32, bf16 > 0 ? bf16 : null, m.Threads, fit, timings.Count, model.Name) { VocabGradientGbps = m.VocabGradientGbps };
            string date = DateTime.UtcNow.ToString("yyyy-MM-dd");
            var updated = CpuComputeProfile.Apply(profile, calibration, date) with { Name = Path.GetFileNameWithoutExtension(path), Date = date };
            // A fit the timings do not support is not written over a good profile (unless --force); the measurements are still printed.
            var quality = CpuFitQuality.Assess(fit, r.GetValue(force));
            if (quality.Write) DescriptionJson.WriteFileAtomic(path, updated.Validated(path));
            int code = quality.Write ? ExitCodes.Ok : ExitCodes.Infeasible;
            // With --json, stdout carries only the document, which holds the warning.
            if (quality.Message is { } message && !quiet) io.Console.MarkupLineInterpolated($"[yellow]warning:[/] {message}");
            if (quiet)
            {
                io.Stdout.Write(JsonSerializer.Serialize(new
                {
                    measurement = m, fit = Describe(fit), residuals = timings.Select(t => new { t.Label, measured_s = t.Seconds, fitted_s = fit.Predict(t) }),
                    fit_quality = quality.Verdict, fit_warning = quality.Message, written = quality.Write ? path : null,
                }, DescriptionJson.Options));
                return code;
            }
            var table = new Table().AddColumn("pass").AddColumn(new TableColumn("measured").RightAligned()).AddColumn(new TableColumn("fitted").RightAligned()).AddColumn(new TableColumn("error").RightAligned());
            foreach (var t in timings)
                table.AddTextRow(t.Label, $"{t.Seconds * 1e3:0.0} ms", $"{fit.Predict(t) * 1e3:0.0} ms", $"{(fit.Predict(t) - t.Seconds) / t.Seconds:+0.0%;-0.0%}");
            io.Console.Write(table);
            io.Console.MarkupLineInterpolated($"matmul {fp32:0.0} GFLOP/s fp32, {bf16:0.0} bf16 ({m.Threads} threads); layer matmul efficiency {fit.MatmulEfficiency:0.00}, saved bytes {fit.SavedBytesRate.GBps:0.00} GB/s, overhead {fit.Overhead.Seconds * 1e6:0} µs, backward/forward {fit.BackwardRatio:0.00}; R² {fit.RSquared:0.000}, RMS error {fit.RmsRelativeError:0.0%}; {(quality.Write ? $"wrote {path}" : $"{path} left unchanged")}.");
            return code;
        });
        return command;
    }

    private static object Describe(CpuLayerFitResult f) => new
    {
        matmul_gflops = f.Matmul.FlopsPerSecond / 1e9,
        matmul_efficiency = f.MatmulEfficiency,
        saved_bytes_gbps = f.SavedBytesRate.GBps,
        layer_overhead_us = f.Overhead.Seconds * 1e6,
        backward_ratio = f.BackwardRatio,
        r_squared = f.RSquared,
        rms_relative_error = f.RmsRelativeError,
        terms = f.Terms,
    };
}

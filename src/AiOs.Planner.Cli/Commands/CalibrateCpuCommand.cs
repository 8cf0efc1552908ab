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
            Action<string>? progress = quiet ? null : line => io.Console.WriteLine(line);
            var options = new CpuComputeProbeOptions { Family = model, Repeats = Math.Max(1, r.GetValue(repeats)) };
            var m = CpuComputeProbe.Measure(options, progress);
            double fp32 = m.BestGflops("fp32"), bf16 = m.BestGflops("bf16");
            // The engine computes in the training precision on a CPU: the layers again in bf16 where the CPU has a bf16 matmul.
            var mBf16 = bf16 > 0 ? CpuComputeProbe.Measure(options with { Matmuls = false, LayerPrecision = Settings.Precision.Bf16 }, progress) : null;
            var (timings, fit) = Fitted(m, fp32);
            (IReadOnlyList<LayerTiming> Timings, CpuLayerFitResult Fit)? bf16Fitted = mBf16 is null ? null : Fitted(mBf16, bf16);
            // A fit the timings do not support is not written over a good profile (unless --force); the measurements are still printed.
            bool forced = r.GetValue(force);
            var quality = CpuFitQuality.Assess(fit, forced);
            var bf16Quality = bf16Fitted is { } bf ? CpuFitQuality.Assess(bf.Fit, forced) : null;
            var calibration = new CpuComputeCalibration(fp32, bf16 > 0 ? bf16 : null, m.Threads, new CpuLayerCalibration(fit, timings.Count, m.VocabGradientGbps), model.Name)
            {
                Bf16Layers = bf16Fitted is { } written && bf16Quality!.Write ? new CpuLayerCalibration(written.Fit, written.Timings.Count, mBf16!.VocabGradientGbps) : null,
            };
            string date = DateTime.UtcNow.ToString("yyyy-MM-dd");
            var updated = CpuComputeProfile.Apply(profile, calibration, date) with { Name = Path.GetFileNameWithoutExtension(path), Date = date };
            if (quality.Write) DescriptionJson.WriteFileAtomic(path, updated.Validated(path));
            int code = quality.Write ? ExitCodes.Ok : ExitCodes.Infeasible;
            // The bf16 fit has its own verdict: a refused one is left out of the profile (bf16 training then takes the fp32 fit).
            string? bf16Warning = bf16Quality is null || bf16Quality.Verdict == CpuFitVerdict.Good ? null
                : string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"the bf16 layer fit is {bf16Quality.Verdict.ToString().ToLowerInvariant()} (R² {bf16Fitted!.Value.Fit.RSquared:0.000}, RMS error {bf16Fitted.Value.Fit.RmsRelativeError:0.0%}): {(calibration.Bf16Layers is null ? "cpu.layer_compute_bf16 was left out, and bf16 training takes the fp32 fit" : "cpu.layer_compute_bf16 was written; rerun on a quiet machine to trust it")}.");
            // With --json, stdout carries only the document, which holds the warning.
            if (!quiet)
            {
                if (quality.Message is { } message) io.Console.MarkupLineInterpolated($"[yellow]warning:[/] {message}");
                if (bf16Warning is not null) io.Console.MarkupLineInterpolated($"[yellow]warning:[/] {bf16Warning}");
            }
            if (quiet)
            {
                io.Stdout.Write(JsonSerializer.Serialize(new
                {
                    measurement = m, fit = Describe(fit), residuals = Residuals(timings, fit),
                    measurement_bf16 = mBf16, fit_bf16 = bf16Fitted is { } f16 ? Describe(f16.Fit) : null,
                    residuals_bf16 = bf16Fitted is { } r16 ? Residuals(r16.Timings, r16.Fit) : null,
                    fit_quality = quality.Verdict, fit_warning = quality.Message, fit_quality_bf16 = bf16Quality?.Verdict, fit_warning_bf16 = bf16Warning,
                    written = quality.Write ? path : null, written_bf16 = quality.Write && calibration.Bf16Layers is not null,
                }, DescriptionJson.Options));
                return code;
            }
            var table = new Table().AddColumn("pass").AddColumn(new TableColumn("measured").RightAligned()).AddColumn(new TableColumn("fitted").RightAligned()).AddColumn(new TableColumn("error").RightAligned());
            void Rows(IReadOnlyList<LayerTiming> rows, CpuLayerFitResult f, string prefix)
            {
                foreach (var t in rows)
                    table.AddTextRow(prefix + t.Label, $"{t.Seconds * 1e3:0.0} ms", $"{f.Predict(t) * 1e3:0.0} ms", $"{(f.Predict(t) - t.Seconds) / t.Seconds:+0.0%;-0.0%}");
            }
            Rows(timings, fit, "fp32 ");
            if (bf16Fitted is { } rows16) Rows(rows16.Timings, rows16.Fit, "bf16 ");
            io.Console.Write(table);
            io.Console.MarkupLineInterpolated($"matmul {fp32:0.0} GFLOP/s fp32, {bf16:0.0} bf16 ({m.Threads} threads); fp32 layers: {Summary(fit)}; {(quality.Write ? $"wrote {path}" : $"{path} left unchanged")}.");
            if (bf16Fitted is { } s16)
                io.Console.MarkupLineInterpolated($"bf16 layers: {Summary(s16.Fit)}{(calibration.Bf16Layers is null ? " (not written)" : "")}.");
            return code;
        });
        return command;
    }

    /// <summary>A measurement's timings and their fit against <paramref name="gflops"/>, the matmul rate of the precision they were timed in.</summary>
    private static (IReadOnlyList<LayerTiming> Timings, CpuLayerFitResult Fit) Fitted(CpuComputeMeasurement m, double gflops)
    {
        var timings = m.Layers.Select(s => new LayerTiming(s.Flops, s.SavedBytes, s.Hidden, s.IsBackward, s.Seconds,
            $"{s.Unit} {s.Pass} h={s.Hidden} {s.MicroBatch}×{s.SeqLen}")).ToList();
        return (timings, CpuLayerFit.Fit(timings, new FlopRate(gflops * 1e9)));
    }

    private static IEnumerable<object> Residuals(IReadOnlyList<LayerTiming> timings, CpuLayerFitResult fit) =>
        timings.Select(t => new { t.Label, measured_s = t.Seconds, fitted_s = fit.Predict(t) });

    private static string Summary(CpuLayerFitResult f) => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"matmul efficiency {f.MatmulEfficiency:0.00}, saved bytes {f.SavedBytesRate.GBps:0.00} GB/s, overhead {f.Overhead.Seconds * 1e6:0} µs, backward/forward {f.BackwardRatio:0.00}; R² {f.RSquared:0.000}, RMS error {f.RmsRelativeError:0.0%}");

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

using System.Globalization;
using AiOs.Planner.Calibration;
using AiOs.Planner.Hardware;
using AiOs.Planner.Settings;
using Spectre.Console;

namespace AiOs.Planner.Cli.Rendering;

/// <summary>Runs a calibration under a Spectre progress bar with ETA (drawn only on a terminal).</summary>
internal static class CalibrationProgressBar
{
    /// <summary>Calibrates; the bar is drawn only on an interactive terminal and never with <paramref name="quiet"/> (JSON output).</summary>
    public static async Task<CalibrationResult> RunAsync(IAnsiConsole console, CalibrationOptions options, bool quiet, CancellationToken ct)
    {
        // Off a terminal Spectre prints each update as a line, which would clutter logs and JSON on stdout.
        if (quiet || !console.Profile.Capabilities.Interactive)
            return await Calibrator.RunAsync(options, null, ct).ConfigureAwait(false);
        CalibrationResult? result = null;
        await console.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .StartAsync(async ctx =>
            {
                var task = ctx.AddTask("calibrating", maxValue: 1);
                var progress = new ImmediateProgress<CalibrationProgress>(p =>
                {
                    task.MaxValue = Math.Max(p.Total, 1e-6);
                    task.Value = p.Done;
                    task.Description = p.Phase;
                });
                result = await Calibrator.RunAsync(options, progress, ct).ConfigureAwait(false);
            }).ConfigureAwait(false);
        return result!;
    }
}

/// <summary>The calibration summary: figures, fit quality, cache note, warnings.</summary>
internal static class CalibrationTables
{
    /// <summary>Writes the summary table and where the profile went to the console; the cache note and warnings to stderr.</summary>
    public static void Render(CliIo io, CalibrationResult result, string? outPath)
    {
        var console = io.Console;
        var p = result.Profile;
        var drive = p.Drives[0];
        var aio = new AioSettings();
        string F(double v, string format) => v.ToString(format, CultureInfo.InvariantCulture);
        var table = new Table().AddTextColumns("figure", "value", "how");
        table.AddRow("CPU", Markup.Escape($"{p.Cpu.Model}, {p.Cpu.Cores} cores, {F(p.Cpu.RamGib.Value, "0.0")} GiB"), "/proc");
        table.AddRow("drive", Markup.Escape($"{drive.Model}, {F(drive.CapacityGb.Value, "0")} GB"), Markup.Escape($"{result.Machine.Storage.Path}, rotational flag {(result.Machine.Storage.Rotational is { } rot ? (rot ? "1" : "0") : "?")}"));
        foreach (var (name, dir, samples) in new[] { ("read", drive.Read, result.Drive.ReadSamples.Count), ("write", drive.Write, result.Drive.WriteSamples.Count) })
        {
            table.AddRow($"drive {name} peak", $"{F(dir.PeakGbps.Value, "0.00")} GB/s",
                Markup.Escape($"{samples} samples; fit R² {F(dir.RSquared ?? 0, "0.00")}, RMSE {F(dir.RmseGbps ?? 0, "0.000")} GB/s; half at {F(dir.HalfInflightKib.Value, "0")} KiB in flight"));
            table.AddRow($"drive {name} at 1 MiB × 8", $"{F(dir.Throughput(aio).GBps, "0.00")} GB/s", "the fit at DeepSpeed's default aio settings");
        }
        foreach (var m in result.Drive.Swap)
            table.AddRow(Markup.Escape($"swap cycles, {m.WorkingSet}"), Markup.Escape($"{F(m.ReadRate.GBps, "0.00")} / {F(m.WriteRate.GBps, "0.00")} GB/s"),
                Markup.Escape($"reads / rewrites through the engine's I/O path: × {F(m.ReadRate.BytesPerSecond / drive.Read.Throughput(m.Settings).BytesPerSecond, "0.00")} / × {F(m.WriteRate.BytesPerSecond / drive.Write.Throughput(m.Settings).BytesPerSecond, "0.00")} the curves (what the simulator charges swap traffic)"));
        table.AddRow("memory copy", $"{F(p.Cpu.MemoryBandwidthGbps.Value, "0.0")} GB/s", Markup.Escape($"{result.Host.Threads} threads; 1 thread {F(result.Host.MemcpyOneThread.GBps, "0.0")} GB/s"));
        table.AddRow("CPU Adam", Markup.Escape($"{F(result.Host.AdamAllThreads / 1e6, "0")} M params/s"), Markup.Escape($"{result.Host.Threads} threads; 1 thread {F(result.Host.AdamOneThread / 1e6, "0")} M params/s"));
        if (result.Host.AdamBf16AllThreads is { } bf16All)
            table.AddRow("CPU Adam, engine bf16", Markup.Escape($"{F(bf16All / 1e6, "0")} M params/s"),
                Markup.Escape($"bf16 gradients and copy, in sub-groups; 1 thread {F((result.Host.AdamBf16OneThread ?? 0) / 1e6, "0")} M params/s"));
        if (result.Host.AdamFp16AllThreads is { } fp16All)
            table.AddRow("CPU Adam, engine fp16", Markup.Escape($"{F(fp16All / 1e6, "0")} M params/s"),
                Markup.Escape($"fp32 gradient sums, fp16 copy, in sub-groups; {F(fp16All / Math.Max(1, result.Host.AdamAllThreads), "0.00")}× the fp32-gradient update; 1 thread {F((result.Host.AdamFp16OneThread ?? 0) / 1e6, "0")} M params/s"));
        if (result.Host.Adam8AllThreads is { } eightAll)
            table.AddRow("CPU Adam, 8-bit state", Markup.Escape($"{F(eightAll / 1e6, "0")} M params/s"),
                Markup.Escape($"--optimizer-state 8bit, in sub-groups; {F(eightAll / Math.Max(1, result.Host.AdamBf16AllThreads ?? result.Host.AdamAllThreads), "0.00")}× the engine's fp32-state update; 1 thread {F((result.Host.Adam8OneThread ?? 0) / 1e6, "0")} M params/s"));
        if (result.Host.GradientSums is { } sums)
            table.AddRow("gradient sums", Markup.Escape($"{F(sums.GBps, "0.0")} GB/s"),
                Markup.Escape($"the engine's add of a later micro-batch's bf16 gradients into fp32 sums, memory traffic on {result.Host.Threads} threads"));
        console.Write(table);
        if (drive.CacheNote is { } cache) io.Errors.MarkupLineInterpolated($"[yellow]cache:[/] {cache}");
        foreach (string w in result.Warnings) io.Errors.MarkupLineInterpolated($"[yellow]warning:[/] {w}");
        console.MarkupLineInterpolated($"Calibrated in {result.Elapsed.TotalSeconds:0} s.");
        if (outPath is not null) console.MarkupLineInterpolated($"Wrote [bold]{outPath}[/]; use it with [bold]aios plan --hardware {outPath}[/].");
        else console.MarkupLine("Pass [bold]--out profiles/NAME.json[/] to save the profile.");
    }
}

using AiOs.Planner.Records;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;
using ScottPlot;

namespace AiOs.Planner.Reports;

/// <summary>A named figure: what it shows, ready to save as PNG and SVG.</summary>
public sealed record Figure(string Name, string Caption, Plot Plot, int Width = 900, int Height = 420);

/// <summary>The report's figures, each with a title, axis labels with units and a legend.</summary>
public static class ReportFigures
{
    static ReportFigures() => Fonts.Default = "DejaVu Sans";

    internal static readonly Color Predicted = Color.FromHex("#1f77b4");
    internal static readonly Color Measured = Color.FromHex("#d62728");

    /// <summary>Every figure the run's data supports.</summary>
    public static IReadOnlyList<Figure> All(RecordedRun run)
    {
        var comparison = RunComparison.Of(run);
        var figures = new List<Figure> { StepTimes(run), ComparisonFigures.Phases(run, comparison) };
        if (ComparisonFigures.Tiers(comparison) is { } tiers) figures.Add(tiers);
        if (ComparisonFigures.Operations(comparison) is { } operations) figures.Add(operations);
        if (run.PredictedSpans.Count > 0) figures.Add(Timeline(run.PredictedSpans, "timeline-predicted", "Predicted step: operations per resource"));
        var measured = LastStep(run.MeasuredSpans);
        if (measured.Count > 0) figures.Add(Timeline(measured, "timeline-measured", "Measured step: operations per resource"));
        if (run.PredictedMemory.Count > 0) figures.Add(Memory(run));
        if (NvmeCurve(run) is { } nvme) figures.Add(nvme);
        return figures;
    }

    /// <summary>Measured wall time of every step against the predicted step time.</summary>
    public static Figure StepTimes(RecordedRun run)
    {
        var plot = new Plot();
        double[] xs = run.Steps.Select(s => (double)s.Step).ToArray();
        double[] ys = run.Steps.Select(s => s.WallMs / 1e3).ToArray();
        var measured = plot.Add.Scatter(xs, ys);
        measured.LegendText = "measured";
        measured.Color = Measured;
        if (run.Prediction?.Step is { } p)
        {
            var line = plot.Add.HorizontalLine(p.TimeS);
            line.LegendText = "predicted";
            line.Color = Predicted;
            line.LinePattern = LinePattern.Dashed;
        }
        plot.Title("Step time: measured vs predicted");
        plot.XLabel("step");
        plot.YLabel("step time (s)");
        plot.Axes.SetLimitsY(0, Math.Max(ys.DefaultIfEmpty(0).Max(), run.Prediction?.Step?.TimeS ?? 0) * 1.15 + 1e-9);
        plot.ShowLegend();
        return new Figure("step-times", "Wall time of every step (the first includes warm-up) and the simulator's prediction.", plot);
    }

    /// <summary>A Gantt chart: one row per resource, a bar per operation, coloured by operation.</summary>
    public static Figure Timeline(IReadOnlyList<SpanRecord> spans, string name, string title)
    {
        var plot = new Plot();
        long origin = spans.Min(s => s.StartNs);
        string[] resources = spans.Select(s => s.Resource).Distinct().OrderBy(r => r, StringComparer.Ordinal).ToArray();
        string[] operations = spans.Select(s => s.Operation).Distinct().OrderBy(o => o, StringComparer.Ordinal).ToArray();
        // Twenty distinct colours: a step has up to fourteen kinds of operation.
        var palette = new ScottPlot.Palettes.Category20();
        var colors = operations.Select((o, i) => (o, palette.GetColor(i))).ToDictionary(x => x.o, x => x.Item2);
        foreach (var s in spans)
        {
            int row = Array.IndexOf(resources, s.Resource);
            double start = (s.StartNs - origin) / 1e9, end = Math.Max((s.EndNs - origin) / 1e9, start + 1e-9);
            var rect = plot.Add.Rectangle(start, end, row - 0.35, row + 0.35);
            rect.FillStyle.Color = colors[s.Operation];
            rect.LineStyle.Width = 0;
        }
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            Enumerable.Range(0, resources.Length).Select(i => (double)i).ToArray(), resources);
        foreach (string op in operations) plot.Legend.ManualItems.Add(new LegendItem { LabelText = op, FillColor = colors[op] });
        plot.ShowLegend(Alignment.UpperRight);
        plot.Title(title);
        plot.XLabel("time from the step's start (s)");
        plot.Axes.SetLimitsY(-0.6, resources.Length - 0.4);
        return new Figure(name, title + ".", plot, 1100, 120 + 60 * resources.Length);
    }

    /// <summary>Predicted memory of each tier across the step, with the measured peak resident memory.</summary>
    public static Figure Memory(RecordedRun run)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int i = 0;
        long end = run.PredictedSpans.Select(s => s.EndNs).DefaultIfEmpty(run.PredictedMemory.Max(m => m.TimeNs)).Max();
        foreach (var tier in run.PredictedMemory.GroupBy(m => m.Tier))
        {
            // Levels change at events; hold the last level to the end of the step so constant tiers show too.
            var points = tier.OrderBy(m => m.TimeNs).ToList();
            if (points.All(p => p.Bytes == 0)) continue;
            points.Add(points[^1] with { TimeNs = Math.Max(end, points[^1].TimeNs) });
            var line = plot.Add.ScatterLine(points.Select(p => p.TimeNs / 1e9).ToArray(), points.Select(p => p.Bytes / (double)Bytes.GiBValue).ToArray());
            line.ConnectStyle = ConnectStyle.StepHorizontal;
            line.LegendText = $"{tier.Key} (predicted)";
            line.Color = palette.GetColor(i++);
        }
        long rss = run.Steps.Select(s => s.PeakResidentBytes).DefaultIfEmpty(0).Max();
        if (rss > 0)
        {
            var line = plot.Add.HorizontalLine(rss / (double)Bytes.GiBValue);
            line.LegendText = "peak resident memory (measured)";
            line.Color = Measured;
            line.LinePattern = LinePattern.Dashed;
        }
        plot.Title("Memory per tier across the step");
        plot.XLabel("time from the step's start (s)");
        plot.YLabel("memory (GiB)");
        plot.ShowLegend();
        return new Figure("memory", "Level of each memory tier over the predicted step (GPU per GPU, host and NVMe per node) and the run's measured peak resident set.", plot);
    }

    /// <summary>The calibrated drive curves over bytes in flight (and the swap rates where measured), the run's AIO setting on them, and the NVMe rates each step reached.</summary>
    public static Figure? NvmeCurve(RecordedRun run)
    {
        if (run.Profile is not { Drives.Count: > 0 } profile) return null;
        var steps = run.Steps.Where(s => s.NvmeReadGBps > 0 || s.NvmeWriteGBps > 0).ToList();
        if (steps.Count == 0) return null;
        var aio = ReadAio(run);
        var plot = new Plot();
        // Bytes in flight span four orders of magnitude: the x axis is log2 of KiB, labelled in KiB/MiB.
        double[] inflightKib = Enumerable.Range(0, 53).Select(i => 64 * Math.Pow(2, i / 4.0)).ToArray();
        double[] xs = inflightKib.Select(Math.Log2).ToArray();
        var drive = profile.Drives[0];
        double[] Rate(Func<AioSettings, Bandwidth> f) => inflightKib.Select(k => f(new AioSettings { BlockSize = Bytes.FromKiB(k), QueueDepth = 1 }).GBps).ToArray();
        var read = plot.Add.ScatterLine(xs, Rate(drive.ReadRate));
        read.LegendText = "read, calibrated curve";
        var write = plot.Add.ScatterLine(xs, Rate(drive.WriteRate));
        write.LegendText = "write, calibrated curve";
        var workingSet = new Bytes(run.Prediction?.Memory.NvmeBytes ?? 0);
        if (drive.Swap is not null && workingSet.Value > 0)
        {
            // What the simulator charged this run: the curves times the swap factors at the run's swap working set.
            var swapRead = plot.Add.ScatterLine(xs, Rate(a => drive.SwapReadRate(a, workingSet)));
            swapRead.LegendText = $"read, swap rate for {workingSet}";
            swapRead.Color = read.Color;
            swapRead.LinePattern = LinePattern.Dashed;
            var swapWrite = plot.Add.ScatterLine(xs, Rate(a => drive.SwapWriteRate(a, workingSet)));
            swapWrite.LegendText = $"write, swap rate for {workingSet}";
            swapWrite.Color = write.Color;
            swapWrite.LinePattern = LinePattern.Dashed;
        }
        double x = Math.Log2(aio.InFlight.Value / 1024.0);
        var measuredRead = plot.Add.ScatterPoints(steps.Select(_ => x).ToArray(), steps.Select(s => s.NvmeReadGBps).ToArray());
        measuredRead.LegendText = "read, measured per step";
        measuredRead.Color = Measured;
        var measuredWrite = plot.Add.ScatterPoints(steps.Select(_ => x).ToArray(), steps.Select(s => s.NvmeWriteGBps).ToArray());
        measuredWrite.LegendText = "write, measured per step";
        measuredWrite.MarkerShape = MarkerShape.OpenCircle;
        measuredWrite.Color = Measured;
        double[] ticks = Enumerable.Range(0, 7).Select(i => 6.0 + 2 * i).ToArray();
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks,
            ticks.Select(t => Math.Pow(2, t) >= 1024 ? $"{Math.Pow(2, t) / 1024:0} MiB" : $"{Math.Pow(2, t):0} KiB").ToArray());
        plot.Title("NVMe throughput against the calibrated curve");
        plot.XLabel("bytes in flight: block × queue depth × threads (log scale)");
        plot.YLabel("throughput (GB/s)");
        plot.ShowLegend();
        return new Figure("nvme", $"The profile's drive curves (solid: the sequential sweep; dashed, where calibrated: the swap rates the simulator charged for this run's swap files) and the rates the run reached at its setting ({aio.InFlight} in flight).", plot);
    }

    internal static AioSettings ReadAio(RecordedRun run)
    {
        return run.Settings?.Settings.Aio ?? new AioSettings();
    }

    /// <summary>The spans of the last step in a measured trace.</summary>
    internal static List<SpanRecord> LastStep(IReadOnlyList<SpanRecord> spans)
    {
        if (spans.Count == 0) return [];
        int last = spans.Max(s => s.Step);
        return spans.Where(s => s.Step == last).ToList();
    }
}

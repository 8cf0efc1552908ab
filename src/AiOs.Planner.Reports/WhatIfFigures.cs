using AiOs.Planner.Tuning;
using ScottPlot;

namespace AiOs.Planner.Reports;

/// <summary>What-if figures: predicted tokens/s per machine and model, and what each upgrade buys.</summary>
public static class WhatIfFigures
{
    static WhatIfFigures() => Fonts.Default = "DejaVu Sans";

    /// <summary>Writes the figures as PNG and SVG into <paramref name="outDir"/>; returns their paths.</summary>
    public static IReadOnlyList<string> Write(WhatIfResult result, string outDir)
    {
        Directory.CreateDirectory(outDir);
        var paths = new List<string>();
        foreach (var figure in new[] { Throughput(result, WhatIf.AsIs, "whatif-throughput", "Predicted throughput at the best settings"), Upgrades(result) })
        {
            if (figure is null) continue;
            string png = Path.Combine(outDir, figure.Name + ".png");
            figure.Plot.SavePng(png, figure.Width, figure.Height);
            figure.Plot.SaveSvg(Path.Combine(outDir, figure.Name + ".svg"), figure.Width, figure.Height);
            paths.Add(png);
        }
        return paths;
    }

    /// <summary>Grouped bars: one group per machine, one bar per model (log scale); a model that does not fit has no bar.</summary>
    public static Figure? Throughput(WhatIfResult result, string variant, string name, string title)
    {
        var cells = result.Cells.Where(c => c.Variant == variant).ToList();
        if (cells.Count == 0) return null;
        string[] machines = cells.Select(c => c.Hardware).Distinct().ToArray();
        string[] models = cells.Select(c => c.Model).Distinct().ToArray();
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int width = models.Length + 1;
        for (int m = 0; m < models.Length; m++)
        {
            var bars = new List<Bar>();
            for (int h = 0; h < machines.Length; h++)
            {
                var cell = cells.FirstOrDefault(c => c.Hardware == machines[h] && c.Model == models[m]);
                if (cell is not { Fits: true } || cell.TokensPerSecond <= 0) continue;
                bars.Add(new Bar { Position = h * width + m, Value = Math.Log10(cell.TokensPerSecond), FillColor = palette.GetColor(m) });
            }
            plot.Add.Bars(bars);
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = models[m], FillColor = palette.GetColor(m) });
        }
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            machines.Select((_, h) => h * width + (models.Length - 1) / 2.0).ToArray(), machines);
        double[] decades = Enumerable.Range(0, 8).Select(d => (double)d).ToArray();
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(decades, decades.Select(d => Math.Pow(10, d).ToString("N0")).ToArray());
        plot.Axes.SetLimitsY(0, Math.Max(1, cells.Where(c => c.Fits).Select(c => Math.Log10(Math.Max(1, c.TokensPerSecond))).DefaultIfEmpty(1).Max() + 0.5));
        plot.ShowLegend(Alignment.UpperRight);
        plot.Title(title + " (no bar: does not fit)");
        plot.YLabel("tokens per second (log scale)");
        return new Figure(name, title, plot, Math.Max(700, 90 * machines.Length * width / 2), 450);
    }

    /// <summary>For each machine and model, how much faster each upgrade makes the best settings (× of as-is).</summary>
    public static Figure? Upgrades(WhatIfResult result)
    {
        var upgrades = result.Cells.Where(c => c.Variant != WhatIf.AsIs).ToList();
        if (upgrades.Count == 0) return null;
        string[] variants = upgrades.Select(c => c.Variant).Distinct().ToArray();
        var rows = result.Cells.Where(c => c.Variant == WhatIf.AsIs).Select(c => (c.Hardware, c.Model)).Distinct().ToArray();
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int width = variants.Length + 1;
        for (int v = 0; v < variants.Length; v++)
        {
            var bars = new List<Bar>();
            for (int r = 0; r < rows.Length; r++)
            {
                var before = result.Cells.First(c => c.Variant == WhatIf.AsIs && c.Hardware == rows[r].Hardware && c.Model == rows[r].Model);
                var after = upgrades.FirstOrDefault(c => c.Variant == variants[v] && c.Hardware == rows[r].Hardware && c.Model == rows[r].Model);
                if (after is not { Fits: true } || before is not { Fits: true } || before.TokensPerSecond <= 0) continue;
                bars.Add(new Bar { Position = r * width + v, Value = after.TokensPerSecond / before.TokensPerSecond, FillColor = palette.GetColor(v) });
            }
            plot.Add.Bars(bars);
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = variants[v], FillColor = palette.GetColor(v) });
        }
        plot.Add.HorizontalLine(1, 1, Colors.Gray, LinePattern.Dotted);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            rows.Select((_, r) => r * width + (variants.Length - 1) / 2.0).ToArray(), rows.Select(r => $"{r.Model} @ {r.Hardware}").ToArray());
        plot.Axes.Bottom.TickLabelStyle.Rotation = 35;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleLeft;
        plot.Axes.Bottom.MinimumSize = 220;
        plot.ShowLegend(Alignment.UpperRight);
        plot.Title("What an upgrade buys (speed-up of the best settings; no bar: no fit before or after)");
        plot.YLabel("speed-up (×)");
        return new Figure("whatif-upgrades", "Speed-up per upgrade", plot, Math.Max(800, 30 * rows.Length * width), 620);
    }
}

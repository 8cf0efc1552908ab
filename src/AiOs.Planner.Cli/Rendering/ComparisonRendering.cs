using System.Globalization;
using AiOs.Planner.Records;
using AiOs.Planner.Units;
using Spectre.Console;

namespace AiOs.Planner.Cli.Rendering;

/// <summary>Spectre tables of Core's <see cref="RunComparison"/> for <c>aios train</c> and <c>aios report</c>: rendering only.</summary>
internal static class ComparisonRendering
{
    /// <summary>Operation rows shown on the console (largest first); the HTML report lists them all.</summary>
    public const int ConsoleOperations = 8;

    /// <summary>Step time and phases, predicted against measured; null without rows.</summary>
    public static Table? Phases(RunComparison c, string title)
    {
        if (c.Rows.Count == 0) return null;
        var table = new Table().TextTitle(title).AddTextColumns("phase", "predicted", "measured", "error");
        foreach (var row in c.Rows)
            table.AddTextRow(row.Quantity, Ms(row.Predicted * 1e3), Ms(row.Measured * 1e3), Percent(row.Error));
        return Right(table);
    }

    /// <summary>Memory per tier, predicted peak against the measured figure; null without tiers.</summary>
    public static Table? Tiers(RunComparison c)
    {
        if (c.Tiers.Count == 0) return null;
        var table = new Table().TextTitle("Memory per tier: predicted peak vs measured").AddTextColumns("tier", "predicted", "measured", "error", "compared");
        foreach (var t in c.Tiers)
            table.AddTextRow(t.Tier, new Bytes(t.PredictedBytes).ToString(), t.MeasuredBytes is { } m ? new Bytes(m).ToString() : "not measured",
                Percent(t.Error), $"{t.PredictedAs} vs {t.MeasuredAs}");
        return Right(table);
    }

    /// <summary>The largest operation kinds per resource, busy time per step; null without operations.</summary>
    public static Table? Operations(RunComparison c, int take = ConsoleOperations)
    {
        if (c.Operations.Count == 0) return null;
        var table = new Table().TextTitle($"Busy time per step by operation and resource (largest {Math.Min(take, c.Operations.Count)} of {c.Operations.Count})")
            .AddTextColumns("operation", "resource", "predicted", "measured", "error");
        foreach (var o in c.Operations.Take(take))
            table.AddTextRow(o.Operation, o.Resource, Ms(o.PredictedMs), o.MeasuredMs is { } m ? Ms(m) : "–", Percent(o.Error));
        return Right(table);
    }

    /// <summary>Writes the phase, tier and operation tables that have rows.</summary>
    public static void WriteAll(IAnsiConsole console, RunComparison c, string phaseTitle)
    {
        foreach (var table in new[] { Phases(c, phaseTitle), Tiers(c), Operations(c) })
            if (table is not null) console.Write(table);
    }

    /// <summary>An error as a signed percentage, or an en dash.</summary>
    public static string Percent(double? error) => error is { } e ? e.ToString("+0.0%;-0.0%", CultureInfo.InvariantCulture) : "–";

    private static string Ms(double ms) => ms.ToString("0.0", CultureInfo.InvariantCulture) + " ms";

    /// <summary>Numbers right-aligned: every column but the first.</summary>
    private static Table Right(Table table)
    {
        for (int i = 1; i < table.Columns.Count; i++) table.Columns[i].RightAligned();
        return table;
    }
}

using System.Globalization;

namespace AiOs.Planner.Learning;

/// <summary>
/// A profile's <c>correction</c> section: per phase a regression of ln(measured ÷ predicted), learned from
/// past runs, stored as base64 of the trainer's own model file, and the range of every feature the history
/// covered. Core reads and checks it; only the Calibration library can evaluate the models.
/// </summary>
public sealed record StepCorrectionSpec
{
    /// <summary>The regression that produced the models (<c>sdca</c> or <c>fast_tree</c>).</summary>
    public required string Trainer { get; init; }
    /// <summary>Runs the models were trained on.</summary>
    public required int Runs { get; init; }
    /// <summary>When the correction was learned (ISO 8601).</summary>
    public string? Date { get; init; }
    /// <summary>Range of each feature over the history, in <see cref="CorrectionFeatures.Names"/> order.</summary>
    public required IReadOnlyList<FeatureRange> Ranges { get; init; }
    /// <summary>Base64 of the model of ln(measured ÷ predicted) forward time; null when the history had too few runs for it.</summary>
    public string? Forward { get; init; }
    /// <summary>Same, for backward.</summary>
    public string? Backward { get; init; }
    /// <summary>Same, for the optimizer.</summary>
    public string? Optimizer { get; init; }
    /// <summary>Share of a feature's span it may leave the history's range by before the correction declines.</summary>
    public double Margin { get; init; } = 0.25;

    /// <summary>The stored model of <paramref name="phase"/>, if any.</summary>
    public string? ModelOf(CorrectedPhase phase) => phase switch
    {
        CorrectedPhase.Forward => Forward,
        CorrectedPhase.Backward => Backward,
        _ => Optimizer,
    };

    /// <summary>Why <paramref name="features"/> lie too far outside the history to trust the correction; null when they lie inside.</summary>
    public string? OutsideRange(CorrectionFeatures features)
    {
        double[] x = features.ToVector();
        var names = CorrectionFeatures.Names;
        var outside = new List<string>();
        foreach (var range in Ranges)
        {
            int i = IndexOf(names, range.Name);
            if (i < 0) return $"the correction names feature '{range.Name}', which this version does not compute; relearn it";
            double slack = (range.Max - range.Min) * Margin;
            // A feature the history never varied (a single precision, say) must match exactly: nothing says how it bends the ratio.
            double tolerance = Math.Max(slack, 1e-9 * Math.Max(1, Math.Abs(range.Max)));
            if (x[i] < range.Min - tolerance || x[i] > range.Max + tolerance)
                outside.Add(string.Create(CultureInfo.InvariantCulture, $"{range.Name} {x[i]:G4} outside the history's [{range.Min:G4}, {range.Max:G4}]"));
        }
        return outside.Count == 0 ? null : string.Join("; ", outside);
    }

    private static int IndexOf(IReadOnlyList<string> names, string name)
    {
        for (int i = 0; i < names.Count; i++)
            if (names[i] == name) return i;
        return -1;
    }
}

/// <summary>The smallest and largest value of one feature over a history of runs.</summary>
public sealed record FeatureRange(string Name, double Min, double Max);

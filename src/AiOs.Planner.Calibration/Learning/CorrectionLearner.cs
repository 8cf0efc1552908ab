using AiOs.Planner.Learning;
using Microsoft.ML;

namespace AiOs.Planner.Calibration.Learning;

/// <summary>What to learn a correction with.</summary>
public sealed record LearnOptions
{
    /// <summary>The regression; auto picks by the number of runs.</summary>
    public CorrectionTrainerKind Trainer { get; init; } = CorrectionTrainerKind.Auto;
    /// <summary>Seed of the trainers' randomness, so the same history gives the same models.</summary>
    public int Seed { get; init; }
    /// <summary>Date written into the correction (ISO 8601); passed in, never read from a clock here.</summary>
    public string? Date { get; init; }
    /// <summary>Fewest runs with a usable label before a phase gets a model (otherwise its ratio stays 1).</summary>
    public int MinRunsPerPhase { get; init; } = 3;
}

/// <summary>
/// Learns, per phase, a regression of ln(measured ÷ predicted) from past runs. The log keeps a corrected
/// time positive and treats "twice as slow" and "twice as fast" alike.
/// </summary>
public static class CorrectionLearner
{
    /// <summary>The correction section learned from <paramref name="runs"/>.</summary>
    public static StepCorrectionSpec Learn(IReadOnlyList<RunObservation> runs, LearnOptions? options = null)
    {
        options ??= new LearnOptions();
        if (runs.Count == 0) throw new CalibrationException("The history holds no usable run: train a few with `aios train --runs-dir DIR` first.");
        var kind = CorrectionPipelines.Resolve(options.Trainer, runs.Count);
        return new StepCorrectionSpec
        {
            Trainer = CorrectionPipelines.Name(kind),
            Runs = runs.Count,
            Date = options.Date,
            Ranges = Ranges(runs),
            Forward = Train(runs, CorrectedPhase.Forward, kind, options),
            Backward = Train(runs, CorrectedPhase.Backward, kind, options),
            Optimizer = Train(runs, CorrectedPhase.Optimizer, kind, options),
        };
    }

    /// <summary>The range of every feature over <paramref name="runs"/>.</summary>
    public static IReadOnlyList<FeatureRange> Ranges(IReadOnlyList<RunObservation> runs)
    {
        var vectors = runs.Select(r => r.Features.ToVector()).ToList();
        return CorrectionFeatures.Names.Select((name, i) => new FeatureRange(name, vectors.Min(v => v[i]), vectors.Max(v => v[i]))).ToList();
    }

    private static string? Train(IReadOnlyList<RunObservation> runs, CorrectedPhase phase, CorrectionTrainerKind kind, LearnOptions options)
    {
        var rows = runs.Select(r => r.LogRatio(phase) is { } y ? CorrectionRow.Of(r.Features, y) : null).OfType<CorrectionRow>().ToList();
        if (rows.Count < options.MinRunsPerPhase) return null;
        var ml = new MLContext(seed: options.Seed);
        var data = ml.Data.LoadFromEnumerable(rows);
        var model = CorrectionPipelines.Create(ml, kind, rows.Count).Fit(data);
        using var stream = new MemoryStream();
        ml.Model.Save(model, data.Schema, stream);
        return Convert.ToBase64String(stream.ToArray());
    }
}

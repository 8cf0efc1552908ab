using AiOs.Planner.Learning;
using Microsoft.ML;

namespace AiOs.Planner.Calibration.Learning;

/// <summary>
/// Evaluates a profile's <c>correction</c> section: one ML.NET model per phase, ratio = e^score, kept within
/// [<see cref="MinRatio"/>, <see cref="MaxRatio"/>] so one odd run cannot make a prediction absurd.
/// Safe to share between threads (ML.NET's prediction engines are not, so each use is locked).
/// </summary>
public sealed class LearnedCorrection : IStepCorrection
{
    /// <summary>The smallest ratio applied.</summary>
    public const double MinRatio = 0.05;
    /// <summary>The largest ratio applied.</summary>
    public const double MaxRatio = 20;

    private readonly PredictionEngine<CorrectionRow, CorrectionScore>?[] _engines;
    private readonly Lock _gate = new();

    private LearnedCorrection(PredictionEngine<CorrectionRow, CorrectionScore>?[] engines) => _engines = engines;

    /// <summary>Loads the models of <paramref name="spec"/>; a model that cannot be read is a clear error, not a silent ratio of 1.</summary>
    public static LearnedCorrection Load(StepCorrectionSpec spec)
    {
        var ml = new MLContext(seed: 0);
        var engines = Enum.GetValues<CorrectedPhase>().Select(phase => spec.ModelOf(phase) is { } base64 ? Engine(ml, phase, base64) : null).ToArray();
        return new LearnedCorrection(engines);
    }

    /// <summary>The correction of a profile, or null when the profile has none.</summary>
    public static LearnedCorrection? For(Hardware.HardwareProfile profile) => profile.Correction is { } spec ? Load(spec) : null;

    /// <inheritdoc />
    public CorrectionVerdict Apply(CorrectionFeatures features)
    {
        var row = CorrectionRow.Of(features);
        lock (_gate)
        {
            return CorrectionVerdict.Apply(new PhaseRatios(Ratio(0, row), Ratio(1, row), Ratio(2, row)));
        }
    }

    private double Ratio(int phase, CorrectionRow row)
    {
        if (_engines[phase] is not { } engine) return 1;
        double score = engine.Predict(row).Score;
        return double.IsFinite(score) ? Math.Clamp(Math.Exp(score), MinRatio, MaxRatio) : 1;
    }

    private static PredictionEngine<CorrectionRow, CorrectionScore> Engine(MLContext ml, CorrectedPhase phase, string base64)
    {
        try
        {
            using var stream = new MemoryStream(Convert.FromBase64String(base64));
            var model = ml.Model.Load(stream, out _);
            return ml.Model.CreatePredictionEngine<CorrectionRow, CorrectionScore>(model);
        }
        catch (Exception e) when (e is FormatException or InvalidOperationException or InvalidDataException or ArgumentException)
        {
            throw new CalibrationException($"The profile's correction.{phase.ToString().ToLowerInvariant()} model cannot be read ({e.Message}); relearn it with `aios learn`.");
        }
    }
}

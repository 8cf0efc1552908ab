namespace AiOs.Planner.Learning;

/// <summary>
/// One past run as the learner sees it: its features (with the simulator's uncorrected phases) and the
/// measured phase seconds, the mean of the steps after the first (the first pays for warm-up and allocation).
/// </summary>
public sealed record RunObservation(string RunId, CorrectionFeatures Features, PhaseSeconds Measured)
{
    /// <summary>ln(measured ÷ predicted) of <paramref name="phase"/>, the learner's label; null when either side is not positive.</summary>
    public double? LogRatio(CorrectedPhase phase)
    {
        double predicted = Features.Predicted.Of(phase), measured = Measured.Of(phase);
        return predicted > 0 && measured > 0 ? Math.Log(measured / predicted) : null;
    }
}

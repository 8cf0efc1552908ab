using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Units;

namespace AiOs.Planner.Learning;

/// <summary>What became of a profile's learned correction in one plan.</summary>
public sealed record CorrectionOutcome
{
    /// <summary>True when the step's phases were scaled by <see cref="Ratios"/>.</summary>
    public required bool Applied { get; init; }
    /// <summary>Why the correction was not applied; null when it was.</summary>
    public string? Reason { get; init; }
    /// <summary>The ratios applied (all 1 when not applied).</summary>
    public required PhaseRatios Ratios { get; init; }
    /// <summary>The simulator's own phase seconds, before any correction.</summary>
    public required PhaseSeconds Uncorrected { get; init; }
}

/// <summary>Applies a learned correction to a simulated step, or says why it falls back to the simulator.</summary>
public static class StepCorrector
{
    /// <summary>
    /// The corrected step and what happened; <paramref name="correction"/> null means the caller did not load
    /// the Calibration library (the profile's correction then stays unused, and the outcome says so).
    /// </summary>
    public static (StepResult Step, CorrectionOutcome Outcome) Correct(StepResult step, ModelSpec model, TrainingSettings settings,
        HardwareProfile hardware, IStepCorrection? correction)
    {
        var features = CorrectionFeatures.Of(model, settings, step.Phases);
        var verdict = hardware.Correction is null ? CorrectionVerdict.Decline("the profile has no learned correction")
            : correction is null ? CorrectionVerdict.Decline("this command does not load learned corrections")
            : hardware.Correction.OutsideRange(features) is { } outside ? CorrectionVerdict.Decline("outside the history: " + outside)
            : correction.Apply(features);
        if (verdict.Ratios is not { } ratios)
            return (step, new CorrectionOutcome { Applied = false, Reason = verdict.Reason, Ratios = PhaseRatios.One, Uncorrected = features.Predicted });
        return (Scale(step, ratios), new CorrectionOutcome { Applied = true, Ratios = ratios, Uncorrected = features.Predicted });
    }

    /// <summary>
    /// The step with each phase scaled and the step time their sum plus whatever the phases did not cover;
    /// throughput follows the new time. Spans and the memory trace stay the simulator's.
    /// </summary>
    public static StepResult Scale(StepResult step, PhaseRatios ratios)
    {
        var p = step.Phases;
        var phases = new PhaseTimes(Times(p.Forward, ratios.Forward), Times(p.Backward, ratios.Backward), Times(p.Optimizer, ratios.Optimizer));
        long rest = step.Time.Nanoseconds - (p.Forward.Nanoseconds + p.Backward.Nanoseconds + p.Optimizer.Nanoseconds);
        var time = new SimDuration(Math.Max(1, phases.Forward.Nanoseconds + phases.Backward.Nanoseconds + phases.Optimizer.Nanoseconds + Math.Max(0, rest)));
        double speedup = step.Time.Nanoseconds / (double)time.Nanoseconds;
        return step with
        {
            Time = time,
            Phases = phases,
            TokensPerSecond = step.TokensPerSecond * speedup,
            ModelTflopsPerGpu = step.ModelTflopsPerGpu * speedup,
        };
    }

    private static SimDuration Times(SimDuration d, double ratio) => new((long)Math.Round(d.Nanoseconds * ratio));
}

using AiOs.Planner.Descriptions;
using AiOs.Planner.Learning;
using AiOs.Planner.Records;

namespace AiOs.Planner.Reports;

/// <summary>A folder of run folders read as a learning history: one <see cref="RunObservation"/> per usable run.</summary>
public static class RunHistory
{
    /// <summary>
    /// Largest ratio of the slowest to the fastest step after the first before a run counts as disturbed: on a
    /// quiet machine the steps of one run agree within 1.5×; another process taking the cores stalls some of them.
    /// </summary>
    public const double MaxStepSpread = 2;

    /// <summary>
    /// Every run folder under <paramref name="runsDirectory"/> that has a prediction and at least two measured
    /// steps; the others are listed in <c>Skipped</c> with the reason, so a history never shrinks silently (and so is
    /// a cut-off last line of a run that is used).
    /// </summary>
    public static (IReadOnlyList<RunObservation> Runs, IReadOnlyList<string> Skipped) Load(string runsDirectory)
    {
        string root = Path.GetFullPath(runsDirectory);
        if (!Directory.Exists(root)) throw new DescriptionException($"History folder {root} does not exist. Give the --runs-dir that `aios train` wrote into.") { File = root };
        var runs = new List<RunObservation>();
        var skipped = new List<string>();
        foreach (string dir in Directory.GetDirectories(root).Order(StringComparer.Ordinal))
        {
            string? why = null;
            if (!File.Exists(Path.Combine(dir, "metrics.jsonl")))
            {
                // Listed too, so a history that holds nothing usable still says what each folder was.
                skipped.Add($"{Path.GetFileName(dir)}: no metrics.jsonl (not a run folder, or no step finished)");
                continue;
            }
            try
            {
                var run = RecordedRun.Load(dir);
                if (Observe(run, out why) is { } observation) runs.Add(observation);
                // A cut-off last line was left out of the run's figures: say so beside the runs left out.
                foreach (string w in run.Warnings) skipped.Add($"{Path.GetFileName(dir)}: {(why is null ? "used without a line" : "also")}: {w}");
            }
            catch (DescriptionException e)
            {
                why = e.Message;
            }
            if (why is not null) skipped.Add($"{Path.GetFileName(dir)}: {why}");
        }
        return (runs, skipped);
    }

    /// <summary>The observation of one run, or null with <paramref name="why"/> set.</summary>
    public static RunObservation? Observe(RecordedRun run, out string? why)
    {
        why = null;
        if (run.Prediction is not { Step: { } step } prediction)
        {
            why = "no prediction.json with a simulated step";
            return null;
        }
        if (run.Steps.Count < 2)
        {
            why = "fewer than two measured steps (the first is warm-up)";
            return null;
        }
        // The steps after the first with a finite loss: a step that diverged was not a step of the settings' cost.
        var later = run.SteadySteps;
        if (later.Count == 0)
        {
            why = "no step after the first has a finite loss";
            return null;
        }
        double fastest = later.Min(s => s.WallMs), slowest = later.Max(s => s.WallMs);
        if (fastest > 0 && slowest / fastest > MaxStepSpread)
        {
            why = $"its steps after the first took {fastest:0.#}–{slowest:0.#} ms ({slowest / fastest:0.#}×): the machine was likely busy with something else; rerun it on a quiet machine";
            return null;
        }
        // A prediction made with a corrected profile keeps the simulator's own phases under correction.uncorrected.
        var phases = step.SimulatorPhases;
        var predicted = new PhaseSeconds(phases.ForwardS, phases.BackwardS, phases.OptimizerS);
        var measured = new PhaseSeconds(later.Average(s => s.ForwardMs) / 1e3, later.Average(s => s.BackwardMs) / 1e3, later.Average(s => s.OptimizerMs) / 1e3);
        var model = prediction.Model;
        var features = CorrectionFeatures.Of(model.Params, model.Layers, model.HiddenSize, prediction.Settings, predicted);
        return new RunObservation(Path.GetFileName(run.Directory), features, measured);
    }
}

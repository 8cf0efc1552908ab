using System.Text.Json.Nodes;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Learning;
using AiOs.Planner.Planning;

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
                var run = RunData.Load(dir);
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
    public static RunObservation? Observe(RunData run, out string? why)
    {
        why = null;
        if (run.Prediction?["step"] is not JsonObject step || run.Prediction["model"] is not JsonObject model || run.Prediction["settings"] is not { } settings)
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
        var phases = (step["correction"]?["uncorrected"]?["phases"] ?? step["phases"])!.AsObject();
        var predicted = new PhaseSeconds(Num(phases, "forward_s"), Num(phases, "backward_s"), Num(phases, "optimizer_s"));
        var measured = new PhaseSeconds(later.Average(s => s.ForwardMs) / 1e3, later.Average(s => s.BackwardMs) / 1e3, later.Average(s => s.OptimizerMs) / 1e3);
        var features = CorrectionFeatures.Of((long)Num(model, "params"), (int)Num(model, "layers"), (int)Num(model, "hidden_size"),
            PlanDocument.ReadSettings(settings), predicted);
        return new RunObservation(Path.GetFileName(run.Directory), features, measured);
    }

    private static double Num(JsonObject o, string name) => o[name] is JsonValue v && v.TryGetValue(out double d) ? d : 0;
}

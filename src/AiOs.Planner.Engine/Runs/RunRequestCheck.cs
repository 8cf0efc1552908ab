using System.Globalization;
using AiOs.Planner.Engine.Execution;

namespace AiOs.Planner.Engine.Runs;

/// <summary>
/// Checks of an <see cref="EngineRunRequest"/> beyond the training settings (which <see cref="EngineSettings.Check"/> covers):
/// the run's name, the optimizer's numbers and the checkpoint cadence, so a value that could only end in NaN weights or
/// a path in the wrong place is refused before anything is created.
/// </summary>
public static class RunRequestCheck
{
    /// <summary>Each problem of <paramref name="request"/>, naming the flag to change; empty when none.</summary>
    public static IReadOnlyList<string> Problems(EngineRunRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var problems = new List<string>();
        if (request.Steps < 1) problems.Add($"--steps {request.Steps}: steps must be at least 1");
        if (RunId.Problem(request.Options.RunId) is { } id) problems.Add($"--run-id: {id}");
        if (request.SaveEvery is { } every && every < 1) problems.Add($"--save-every {every}: must be at least 1 (leave it out for no checkpoints)");
        var adam = request.Options.Adam;
        if (LearningRateProblem(adam.LearningRate) is { } lr) problems.Add(lr);
        if (!double.IsFinite(adam.WeightDecay) || adam.WeightDecay < 0) problems.Add($"weight decay {Show(adam.WeightDecay)} must be a finite number ≥ 0");
        if (!(adam.Beta1 is >= 0 and < 1) || !(adam.Beta2 is >= 0 and < 1)) problems.Add($"Adam betas ({Show(adam.Beta1)}, {Show(adam.Beta2)}) must be in [0, 1)");
        if (!double.IsFinite(adam.Epsilon) || adam.Epsilon <= 0) problems.Add($"Adam epsilon {Show(adam.Epsilon)} must be a finite number > 0");
        if (request.Options.Clipping is { } clip && (!double.IsFinite(clip.MaxNorm) || clip.MaxNorm <= 0))
            problems.Add($"--clip-grad-norm {Show(clip.MaxNorm)}: the norm to clip to must be a finite number > 0 (for example 1.0)");
        return problems;
    }

    /// <summary>Throws one message naming every problem of <paramref name="request"/>.</summary>
    /// <exception cref="ArgumentException">The request has a problem.</exception>
    public static void Check(EngineRunRequest request)
    {
        var problems = Problems(request);
        if (problems.Count > 0) throw new ArgumentException("The run cannot start: " + string.Join("; ", problems) + ".");
    }

    /// <summary>Why <paramref name="lr"/> cannot be a learning rate (NaN, infinite or negative), naming --lr; null when it can.</summary>
    public static string? LearningRateProblem(double lr) =>
        double.IsFinite(lr) && lr >= 0 ? null : $"--lr {Show(lr)}: the learning rate must be a finite number ≥ 0 (the default is 1e-4)";

    private static string Show(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
}

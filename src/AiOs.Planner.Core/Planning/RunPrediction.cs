using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;

namespace AiOs.Planner.Planning;

/// <summary>
/// Stores the simulator's prediction beside a run: <c>prediction.json</c> (the <c>aios plan --json</c>
/// document), <c>predicted-timeline.jsonl</c> (one step, in the trace's shape) and <c>profile.json</c> (the
/// profile the prediction used), each written atomically.
/// </summary>
public static class RunPrediction
{
    public const string PredictionFile = Records.RecordedRun.PredictionFile;
    public const string TimelineFile = Records.RecordedRun.TimelineFile;
    public const string ProfileFile = Records.RecordedRun.ProfileFile;

    /// <summary>Plans and simulates the run's settings and writes the three files into <paramref name="runDir"/>.</summary>
    /// <remarks><paramref name="correction"/> evaluates the profile's learned correction, when it has one.</remarks>
    public static PlanResult Write(string runDir, ModelSpec model, HardwareProfile hardware, TrainingSettings settings, Learning.IStepCorrection? correction = null)
    {
        Directory.CreateDirectory(runDir);
        var plan = TrainingPlanner.Plan(model, hardware, settings, new PlanOptions { KeepTimeline = true, FirstStep = true, Correction = correction });
        // The typed plan record, as `aios plan --json` prints it; the run record reads it back as a PlanRecord.
        AtomicFile.WriteAllText(Path.Combine(runDir, PredictionFile), DeepSpeedConfig.ToJson(PlanDocument.Build(plan)));
        if (plan.Step is { } step) Timeline.Write(Path.Combine(runDir, TimelineFile), step, hardware.HasGpu);
        DescriptionJson.WriteFileAtomic(Path.Combine(runDir, ProfileFile), hardware);
        return plan;
    }
}

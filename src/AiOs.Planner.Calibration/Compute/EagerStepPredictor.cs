using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;

namespace AiOs.Planner.Calibration.Compute;

/// <summary>A baseline row with its model and the settings the planner prices it with.</summary>
public sealed record EagerSetting(EagerBaseline Baseline, ModelSpec Model, TrainingSettings Settings);

/// <summary>
/// The <c>deepspeed</c> executor's step time for a PyTorch eager baseline: the settings
/// <c>aios plan --executor deepspeed --gpus 1 --micro-batch N --seq-len L --precision P [--grad-checkpointing]</c> builds
/// (nothing offloaded, accumulation 1, resolved and validated as the CLI does), priced by
/// <see cref="TrainingPlanner.Plan"/> with a given <see cref="ComputeModel"/>: the same path as the plan command.
/// </summary>
public static class EagerStepPredictor
{
    /// <summary>The settings of one baseline: a single GPU (the bench runs one process), the deepspeed executor.</summary>
    public static TrainingSettings SettingsOf(EagerBaseline b) => SettingsRules.Resolve(new TrainingSettings
    {
        MicroBatch = b.MicroBatch,
        SeqLen = b.SeqLen,
        GradAccumulation = 1,
        Precision = b.Precision,
        ActivationCheckpointing = b.Checkpointing,
        GpusPerNode = 1,
        Nodes = 1,
        Executor = ExecutorKind.DeepSpeed,
    }, stageGiven: false);

    /// <summary>Resolves each row's model and checks its settings once, so the fit's loop only prices them.</summary>
    /// <param name="rows">The usable rows, in file order.</param>
    /// <param name="hardware">The GPU profile they ran on.</param>
    /// <param name="loadModel">Loads a model by name (<see cref="ModelCatalog.Load"/> for the bundled ones).</param>
    /// <exception cref="CalibrationException">An unknown model, or settings the planner refuses; the message names the row.</exception>
    public static IReadOnlyList<EagerSetting> Prepare(IEnumerable<EagerBaseline> rows, HardwareProfile hardware, Func<string, ModelSpec> loadModel)
    {
        if (!hardware.HasGpu)
            throw new CalibrationException($"{hardware.Name} has no GPU section: the baselines are GPU steps; give --hardware a GPU profile (e.g. h200-1x).");
        var models = new Dictionary<string, ModelSpec>(StringComparer.Ordinal);
        var settings = new List<EagerSetting>();
        foreach (var row in rows)
        {
            if (!models.TryGetValue(row.Model, out var model))
            {
                try
                {
                    model = loadModel(row.Model);
                }
                catch (DescriptionException e)
                {
                    throw new CalibrationException($"{row.Source}: model \"{row.Model}\" is not one the planner knows ({e.Message}); name a bundled model (aios models) or add models/{row.Model}.json.");
                }
                models[row.Model] = model;
            }
            TrainingSettings s;
            try
            {
                s = SettingsOf(row).Validated(model);
            }
            catch (DescriptionException e)
            {
                throw new CalibrationException($"{row.Source}: the planner refuses these settings for {row.Model}: {e.Message}");
            }
            settings.Add(new EagerSetting(row, model, s));
        }
        return settings;
    }

    /// <summary>The predicted steady step time of <paramref name="setting"/> with <paramref name="compute"/>, in milliseconds.</summary>
    /// <exception cref="CalibrationException">The plan produced no step (settings it refuses).</exception>
    public static double PredictMs(EagerSetting setting, HardwareProfile hardware, ComputeModel compute)
    {
        // No learned correction: it is learned from the engine's runs, and the question here is the compute model alone.
        var plan = TrainingPlanner.Plan(setting.Model, hardware, setting.Settings, new PlanOptions { ComputeModel = compute });
        if (plan.Step is not { } step)
            throw new CalibrationException($"{setting.Baseline.Source}: the planner gave no step time ({string.Join("; ", plan.Problems)}).");
        return step.Time.Milliseconds;
    }
}

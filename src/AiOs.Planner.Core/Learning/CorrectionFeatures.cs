using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;

namespace AiOs.Planner.Learning;

/// <summary>The three step phases a learned correction scales.</summary>
public enum CorrectedPhase
{
    Forward,
    Backward,
    Optimizer,
}

/// <summary>
/// What a learned correction sees of one run: the model's shape, the settings that change time, and the
/// simulator's uncorrected phase seconds. Categorical settings are numbers (tiers: none 0, cpu 1, nvme 2).
/// </summary>
public sealed record CorrectionFeatures
{
    /// <summary>Feature names, in the order of <see cref="ToVector"/>; stored with each feature range in a profile.</summary>
    public static IReadOnlyList<string> Names { get; } =
    [
        "log10_params", "layers", "hidden_size", "micro_batch", "seq_len", "grad_accumulation", "precision",
        "param_offload", "optimizer_offload", "checkpointing", "schedule",
        "predicted_forward_s", "predicted_backward_s", "predicted_optimizer_s",
    ];

    /// <summary>Parameters of the model.</summary>
    public required long Parameters { get; init; }
    /// <summary>Transformer layers.</summary>
    public required int Layers { get; init; }
    /// <summary>Hidden size.</summary>
    public required int HiddenSize { get; init; }
    /// <summary>Sequences per micro-batch.</summary>
    public required int MicroBatch { get; init; }
    /// <summary>Tokens per sequence.</summary>
    public required int SeqLen { get; init; }
    /// <summary>Micro-batches per optimizer step.</summary>
    public required int GradAccumulation { get; init; }
    /// <summary>Training precision.</summary>
    public required Precision Precision { get; init; }
    /// <summary>Where parameters live.</summary>
    public required OffloadTier ParamOffload { get; init; }
    /// <summary>Where optimizer states live.</summary>
    public required OffloadTier OptimizerOffload { get; init; }
    /// <summary>Activation checkpointing on.</summary>
    public required bool Checkpointing { get; init; }
    /// <summary>Order of backward and optimizer work.</summary>
    public required StepSchedule Schedule { get; init; }
    /// <summary>The simulator's uncorrected phase times.</summary>
    public required PhaseSeconds Predicted { get; init; }

    /// <summary>The features of a plan: <paramref name="phases"/> are the simulator's uncorrected phases.</summary>
    public static CorrectionFeatures Of(ModelSpec model, TrainingSettings settings, PhaseTimes phases) =>
        Of(model.TotalParameters, model.NumLayers, model.HiddenSize, settings,
            new PhaseSeconds(phases.Forward.Seconds, phases.Backward.Seconds, phases.Optimizer.Seconds));

    /// <summary>The features from bare model figures (as a run folder's <c>prediction.json</c> holds them).</summary>
    public static CorrectionFeatures Of(long parameters, int layers, int hidden, TrainingSettings settings, PhaseSeconds predicted) => new()
    {
        Parameters = parameters,
        Layers = layers,
        HiddenSize = hidden,
        MicroBatch = settings.MicroBatch,
        SeqLen = settings.SeqLen,
        GradAccumulation = settings.GradAccumulation,
        Precision = settings.Precision,
        ParamOffload = settings.ParamOffload,
        OptimizerOffload = settings.OptimizerOffload,
        Checkpointing = settings.ActivationCheckpointing,
        Schedule = settings.Schedule,
        Predicted = predicted,
    };

    /// <summary>The features as numbers, in the order of <see cref="Names"/>.</summary>
    public double[] ToVector() =>
    [
        Math.Log10(Math.Max(1, Parameters)), Layers, HiddenSize, MicroBatch, SeqLen, GradAccumulation, (int)Precision,
        (int)ParamOffload, (int)OptimizerOffload, Checkpointing ? 1 : 0, (int)Schedule,
        Predicted.Forward, Predicted.Backward, Predicted.Optimizer,
    ];
}

/// <summary>Seconds of each phase of one step (forward, backward, optimizer).</summary>
public readonly record struct PhaseSeconds(double Forward, double Backward, double Optimizer)
{
    /// <summary>The step: the phases follow one another.</summary>
    public double Total => Forward + Backward + Optimizer;

    /// <summary>The seconds of <paramref name="phase"/>.</summary>
    public double Of(CorrectedPhase phase) => phase switch
    {
        CorrectedPhase.Forward => Forward,
        CorrectedPhase.Backward => Backward,
        _ => Optimizer,
    };

    /// <summary>Each phase scaled by its ratio.</summary>
    public PhaseSeconds Scaled(PhaseRatios r) => new(Forward * r.Forward, Backward * r.Backward, Optimizer * r.Optimizer);
}

/// <summary>Measured ÷ predicted per phase; 1 leaves a phase as the simulator said.</summary>
public readonly record struct PhaseRatios(double Forward, double Backward, double Optimizer)
{
    /// <summary>No correction.</summary>
    public static PhaseRatios One { get; } = new(1, 1, 1);
}

/// <summary>What a correction says for one plan: ratios, or why it declined (then the plan keeps the uncorrected prediction).</summary>
public sealed record CorrectionVerdict(PhaseRatios? Ratios, string? Reason)
{
    /// <summary>The correction applies.</summary>
    public static CorrectionVerdict Apply(PhaseRatios ratios) => new(ratios, null);

    /// <summary>The correction declines, saying why.</summary>
    public static CorrectionVerdict Decline(string reason) => new(null, reason);
}

/// <summary>
/// A learned correction of the simulator's phase times. Core only holds the interface so that it stays
/// free of machine-learning dependencies; <c>AiOs.Planner.Calibration</c> implements it from a profile's
/// <c>correction</c> section.
/// </summary>
public interface IStepCorrection
{
    /// <summary>Ratios for the run that <paramref name="features"/> describe, or a reason to fall back.</summary>
    CorrectionVerdict Apply(CorrectionFeatures features);
}

using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Storage;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Engine.Execution;

/// <summary>An executor of training steps, as <see cref="EngineRun"/> drives it.</summary>
public interface ITrainer : IDisposable
{
    /// <summary>Which executor runs the steps and how (recorded in the run summary).</summary>
    string Executor { get; }

    /// <summary>Spans of everything the trainer did, per resource.</summary>
    SpanTrace Trace { get; }

    /// <summary>Bytes moved per tier.</summary>
    IoCounters Io { get; }

    /// <summary>Device memory in use and its limit; null on a CPU.</summary>
    DeviceMemory? DeviceMemory { get; }

    /// <summary>Optimizer steps completed (including those restored from a checkpoint).</summary>
    int CompletedSteps { get; }

    /// <summary>Runs one optimizer step over <c>GradAccumulation</c> micro-batches from <paramref name="batchOf"/>.</summary>
    StepResult Step(Func<int, TokenBatch> batchOf);

    /// <summary>
    /// Runs each kind of kernel a step uses once on <paramref name="batch"/> (the step's shapes), changing nothing a step
    /// reads, so the first step runs at the speed of the others (<see cref="KernelWarmUp"/>); returns the seconds it took.
    /// </summary>
    double WarmUp(TokenBatch batch);

    /// <summary>The trainer's own start-up phases (tiers, initial weights), in order.</summary>
    IReadOnlyList<AiOs.Planner.Records.StartupPhase> StartupPhases => [];

    /// <summary>The fp32 master weights of <paramref name="unit"/> (layers, then the outer block).</summary>
    float[] MasterOf(int unit);

    /// <summary>Writes a checkpoint under <paramref name="root"/>; returns its folder.</summary>
    string SaveCheckpoint(string root);

    /// <summary>Restores master weights, moments, working parameters and the step count.</summary>
    void RestoreCheckpoint(string folder);
}

/// <summary>Chooses the executor for a placement.</summary>
public static class Trainers
{
    /// <summary>
    /// Nothing offloaded (parameters, optimizer and gradients all <c>none</c>): <see cref="DeviceTrainer"/>, which
    /// keeps everything on the device and runs AdamW there. Anything offloaded: <see cref="LayerwiseTrainer"/>.
    /// </summary>
    /// <param name="spec">The model.</param>
    /// <param name="settings">Placement, buffers, batch and schedule.</param>
    /// <param name="options">Optimizer, clipping, seed, run id, device.</param>
    /// <param name="swapStore">Makes the store for the swap folder (default: the engine's).</param>
    /// <param name="ranks">The collectives of a data-parallel group, when this process is one of several ranks.</param>
    public static ITrainer Create(ModelSpec spec, TrainingSettings settings, EngineOptions options, Func<SwapDirectory, ISwapStore>? swapStore = null,
        Collectives.ICollectives? ranks = null) =>
        IsResident(settings) ? new DeviceTrainer(spec, settings, options, ranks: ranks) : new LayerwiseTrainer(spec, settings, options, swapStore: swapStore, ranks: ranks);

    /// <summary>Whether <paramref name="settings"/> offload nothing.</summary>
    public static bool IsResident(TrainingSettings settings) =>
        settings.ParamOffload == OffloadTier.None && settings.OptimizerOffload == OffloadTier.None && settings.EffectiveGradientOffload == OffloadTier.None;
}

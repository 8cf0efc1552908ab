namespace AiOs.Planner.Settings;

/// <summary>
/// What <see cref="TrainingSettings.CudaGraphs"/> needs, the one rule the CLI, the settings checks, the plan and the engine share:
/// the aios executor (DeepSpeed's ZeRO training captures no graphs), nothing offloaded (the resident trainer: the layer-by-layer
/// trainer moves layers through device slots, which the graphs do not capture) and no activation checkpointing (a recomputed
/// layer is not captured). The device must be a GPU; the engine checks its device and the plan its hardware.
/// </summary>
public static class CudaGraphRule
{
    /// <summary>Why <paramref name="s"/> cannot replay its layers from CUDA graphs, with the fix; null when it can, or does not ask to.</summary>
    public static string? Problem(TrainingSettings s)
    {
        if (!s.CudaGraphs) return null;
        if (s.Executor != ExecutorKind.Aios)
            return "--cuda-graphs is the aios engine's (DeepSpeed's ZeRO training captures no graphs): drop it, or use --executor aios";
        if (s.ParamOffload != OffloadTier.None || s.OptimizerOffload != OffloadTier.None || s.EffectiveGradientOffload != OffloadTier.None)
            return "--cuda-graphs runs with nothing offloaded (the resident trainer); the layer-by-layer trainer moves layers through device slots, which the graphs do not capture: drop --cuda-graphs or the offload flags";
        if (s.ActivationCheckpointing)
            return "--cuda-graphs captures each layer's forward with what its backward reads, and --grad-checkpointing recomputes the layer instead, which is not captured: drop one of the two";
        return null;
    }

    /// <summary>Whether the plan prices <paramref name="s"/>'s layers as graph replays: asked for, and runnable.</summary>
    public static bool Replays(TrainingSettings s) => s.CudaGraphs && Problem(s) is null;
}

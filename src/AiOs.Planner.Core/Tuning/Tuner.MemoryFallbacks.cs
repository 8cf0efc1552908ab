using AiOs.Planner.Memory;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Tuning;

/// <summary>
/// The memory fallbacks the structure search tries where a candidate overflows GPU memory: activation checkpoints in CPU
/// RAM (<c>--offload-activations cpu</c>) and memory-centric tiling (<c>--tiling-factor T</c>). Tried only where the
/// executor can run them (<see cref="MemoryCentricTiling.Problems"/> says nothing against them), only on a miss (so a
/// plan that fits on the device is never slowed by them), and never when the user fixed them.
/// </summary>
public static partial class Tuner
{
    /// <summary>Whether the user fixed the tiling factor (<see cref="TuneRequest.TilingGiven"/>, or a factor above 1 in <see cref="TuneRequest.Base"/>): kept, not searched.</summary>
    internal static bool TilingFixed(TuneRequest r) => r.TilingGiven || r.Base.TilingFactor > 1;

    /// <summary>Whether the user fixed where activation checkpoints go (<see cref="TuneRequest.ActivationOffloadGiven"/>, or cpu in <see cref="TuneRequest.Base"/>): kept, not searched.</summary>
    internal static bool ActivationOffloadFixed(TuneRequest r) => r.ActivationOffloadGiven || r.Base.ActivationOffload != OffloadTier.None;

    /// <summary>
    /// Whether the executor of <paramref name="s"/> runs its tiling and activation placement: no settings problem with
    /// them and, for the bundled engine, no refusal. Which executor runs what is theirs to say, never the tuner's.
    /// </summary>
    internal static bool ExecutorRuns(TrainingSettings s) =>
        MemoryCentricTiling.Problems(s).Count == 0 && (s.Executor != ExecutorKind.Aios || MemoryCentricTiling.EngineRefusal(s) is null);

    /// <summary>
    /// The smallest tiling factor at which <paramref name="s"/> fits GPU memory (<see cref="MemoryCentricTiling.SmallestFittingFactor"/>),
    /// or null where the executor cannot tile or no factor fits.
    /// </summary>
    private static int? TilingFor(TuneRequest r, TrainingSettings s)
    {
        if (TilingFixed(r) || s.TilingFactor != 1 || !ExecutorRuns(s with { TilingFactor = 2 })) return null;
        return MemoryCentricTiling.SmallestFittingFactor(r.Model, r.Hardware, s) is { } t && t > 1 ? t : null;
    }

    /// <summary>Whether <paramref name="c"/> needs more GPU memory than the headroom leaves (so a fallback might make it fit).</summary>
    private static bool OverflowsGpu(Candidate c, TuneRequest r) =>
        r.Hardware.HasGpu && c.GpuPeak.Value > r.Hardware.Gpu!.Memory.Value * (1 - r.MemoryHeadroom);

    internal sealed partial class Evaluator
    {
        /// <summary>
        /// For a candidate <paramref name="miss"/> that overflows GPU memory: evaluates checkpoints in CPU RAM (with
        /// checkpointing on), then the smallest fitting tiling factor of each (and twice it, when the headroom refuses the
        /// smallest). Returns every candidate evaluated; cheap — at most one closed-form bisection per variant.
        /// </summary>
        public List<Candidate> Fallbacks(Candidate miss)
        {
            var tried = new List<Candidate>();
            if (!OverflowsGpu(miss, _request)) return tried;
            var s = miss.Settings;
            var variants = new List<Candidate> { miss };
            if (!ActivationOffloadFixed(_request) && s.ActivationCheckpointing && s.ActivationOffload == OffloadTier.None
                && s with { ActivationOffload = OffloadTier.Cpu } is var offloaded && ExecutorRuns(offloaded))
            {
                var c = Evaluate(offloaded);
                tried.Add(c);
                variants.Add(c);
            }
            foreach (var v in variants)
            {
                if (!OverflowsGpu(v, _request) || TilingFor(_request, v.Settings) is not { } t) continue;
                var tiled = Evaluate(v.Settings with { TilingFactor = t });
                tried.Add(tiled);
                // SmallestFittingFactor fits the whole card; the headroom may want one step more.
                if (!tiled.Feasible && OverflowsGpu(tiled, _request) && t * 2 <= MemoryCentricTiling.MaxFactor)
                    tried.Add(Evaluate(v.Settings with { TilingFactor = t * 2 }));
            }
            return tried;
        }
    }
}

using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Planning;

/// <summary>
/// One fix a plan suggests: the flags to type and the same change as a settings transform, so a test (or a tool)
/// can apply it and plan again. Every fix is one that, applied, lowers the need of the tier that overflows.
/// </summary>
public sealed record PlanFix(string Flags, Func<TrainingSettings, TrainingSettings> Apply)
{
    public override string ToString() => Flags;
}

/// <summary>The fixes for a tier that overflows, in the order that costs least throughput.</summary>
public static class PlanAdvice
{
    /// <summary>
    /// Fixes for GPU memory: never a setting already at the suggested value, never more GPUs than the profile has,
    /// never ZeRO-3 partitioning on one GPU (one rank holds every partition), and only those that the memory model
    /// says lower the GPU need (a halved micro-batch can cost more than it saves when accumulation adds a gradient buffer).
    /// </summary>
    public static IReadOnlyList<PlanFix> Gpu(ModelSpec model, HardwareProfile hw, TrainingSettings s, MemoryPlan memory) =>
        GpuCandidates(model, memory, s, hw).Where(f => MemoryPlanner.Plan(model, hw, f.Apply(s)).Gpu.Peak < memory.Gpu.Peak).ToList();

    private static List<PlanFix> GpuCandidates(ModelSpec model, MemoryPlan memory, TrainingSettings s, HardwareProfile hw)
    {
        var fixes = new List<PlanFix>();
        bool activationsDominate = memory.Gpu.Of("activations") + memory.Gpu.Of("logits and loss") > memory.Gpu.Peak / 3;
        if (activationsDominate && !s.ActivationCheckpointing)
            fixes.Add(new("--grad-checkpointing", x => x with { ActivationCheckpointing = true }));
        // Halving keeps the global batch only from an even micro-batch.
        if (activationsDominate && s.MicroBatch > 1 && s.MicroBatch % 2 == 0)
        {
            int micro = s.MicroBatch / 2, accumulation = s.GradAccumulation * 2;
            fixes.Add(new($"--micro-batch {micro} with --grad-accumulation {accumulation}", x => x with { MicroBatch = micro, GradAccumulation = accumulation }));
        }
        if (s.OptimizerOffload == OffloadTier.None)
        {
            // Offloading the optimizer needs a ZeRO stage; zero2 is what the CLI picks for it when no stage is given.
            fixes.Add(s.ZeroStage == ZeroStage.None
                ? new("--zero-stage zero2 --offload-optimizer cpu", x => x with { ZeroStage = ZeroStage.Zero2, OptimizerOffload = OffloadTier.Cpu })
                : new("--offload-optimizer cpu", x => x with { OptimizerOffload = OffloadTier.Cpu }));
        }
        long ranks = Topology.Of(s, hw).Ranks;
        if (!s.PartitionsParameters && ranks > 1)
            fixes.Add(new("--zero-stage zero3", x => x with { ZeroStage = ZeroStage.Zero3 }));
        if (s.ParamOffload == OffloadTier.None)
        {
            // Parameters leave the GPU together with the optimizer: with the fp32 master weights and moments still on
            // the GPU, ZeRO-3's gather buffers make the GPU need grow, not shrink.
            string stage = s.PartitionsParameters ? "" : "--zero-stage infinity ";
            string optimizer = s.OptimizerOffload == OffloadTier.None ? " --offload-optimizer cpu" : "";
            // Offloaded parameters go through the swap buffers under the aios executor: they must hold its largest unit.
            long buffer = SwapBufferRule.Holds(model, s with { ParamOffload = OffloadTier.Cpu }, s.Executor) ? s.BufferSize : SwapBufferRule.Required(model, s.Executor);
            string bufferFlag = buffer == s.BufferSize ? "" : $" --buffer-size {buffer}";
            fixes.Add(new($"{stage}--offload-params cpu{optimizer}{bufferFlag}", x => x with
            {
                ZeroStage = x.PartitionsParameters ? x.ZeroStage : ZeroStage.Infinity,
                ParamOffload = OffloadTier.Cpu,
                OptimizerOffload = x.OptimizerOffload == OffloadTier.None ? OffloadTier.Cpu : x.OptimizerOffload,
                BufferSize = Math.Max(x.BufferSize, buffer),
            }));
        }
        // DeepSpeed's program only: checkpoints to host RAM, and the smallest memory-centric tiling that fits (issue 14 item 5).
        if (s.Executor == ExecutorKind.DeepSpeed && s.ActivationCheckpointing && s.ActivationOffload == OffloadTier.None && hw.HasGpu)
            fixes.Add(new("--offload-activations cpu", x => x with { ActivationOffload = OffloadTier.Cpu }));
        if (MemoryCentricTiling.SmallestFittingFactor(model, hw, s) is { } tiles && tiles > s.TilingFactor)
            fixes.Add(new($"--tiling-factor {tiles}", x => x with { TilingFactor = tiles }));
        // Prefetched layers are gathered parameter partitions: only ZeRO-3 has them.
        if (s.PartitionsParameters && s.PrefetchDepth > 1)
            fixes.Add(new($"--prefetch-depth {s.PrefetchDepth - 1}", x => x with { PrefetchDepth = x.PrefetchDepth - 1 }));
        return fixes;
    }

    /// <summary>Fixes for pinned host memory: unpinning (when pinned) and fewer swap buffers (when more than one).</summary>
    public static IReadOnlyList<PlanFix> Pinned(TrainingSettings s)
    {
        var fixes = new List<PlanFix>();
        // Only CPU-offloaded tensors follow pin_memory; NVMe swap buffers are pinned either way.
        if (s.PinMemory && (s.ParamOffload == OffloadTier.Cpu || s.OptimizerOffload == OffloadTier.Cpu)) fixes.Add(new("--no-pin-memory", x => x with { PinMemory = false }));
        if (s.ParamOffload == OffloadTier.Nvme && s.BufferCount > 1)
            fixes.Add(new($"--buffer-count {s.BufferCount - 1}", x => x with { BufferCount = x.BufferCount - 1 }));
        if (s.OptimizerOffload == OffloadTier.Nvme && s.OptimizerBufferCount > 1)
            fixes.Add(new($"--optimizer-buffer-count {s.OptimizerBufferCount - 1}", x => x with { OptimizerBufferCount = x.OptimizerBufferCount - 1 }));
        return fixes;
    }

    /// <summary>
    /// The fix for a <c>buffer_size</c> too small for what the executor swaps (<see cref="SwapBufferRule"/>): the least value
    /// that works; empty when the buffers already hold it.
    /// </summary>
    public static IReadOnlyList<PlanFix> BufferSize(ModelSpec model, TrainingSettings s)
    {
        if (SwapBufferRule.Holds(model, s, s.Executor)) return [];
        long required = SwapBufferRule.Required(model, s.Executor);
        return [new($"--buffer-size {required}", x => x with { BufferSize = Math.Max(x.BufferSize, required) })];
    }

    /// <summary>"Try A, or B." — or, with no fix left in the settings, what only other hardware can change.</summary>
    public static string Text(IReadOnlyList<PlanFix> fixes, string otherwise) =>
        fixes.Count == 0 ? otherwise : "Try " + string.Join(", or ", fixes.Select(f => f.Flags)) + ".";
}

using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Tuning;

/// <summary>The structures the tuner tries: every placement the planner accepts, every batch shape allowed.</summary>
public static partial class Tuner
{
    /// <summary>Folder used for NVMe candidates when the user gave none; the explanation asks for a real one.</summary>
    public const string PlaceholderNvmePath = "/path/to/nvme";

    private static readonly int[] MicroBatches = [1, 2, 4, 8, 16, 32, 64, 128];
    private static readonly int[] Accumulations = [1, 2, 4, 8];

    /// <summary>The flags of the rules that say whether a stage and placement go together.</summary>
    private static readonly string[] PlacementFlags = ["--zero-stage", "--nvme-offload-gradients", "--nvme-offload-path"];

    /// <summary>Whether DeepSpeed can run these settings as planned: its own step schedule, gradients kept with the optimizer.</summary>
    public static bool RunsOnDeepSpeed(TrainingSettings s) =>
        s.Schedule == StepSchedule.DeepSpeed && (s.GradientOffload is null || s.GradientOffload == s.OptimizerOffload)
        // DeepSpeed's offloaded optimizer keeps fp32 state: an 8-bit plan is the aios engine's only.
        && s.OptimizerState == Optim.OptimizerStateFormat.Fp32
        // DeepSpeed keeps the optimizer on one tier: a RAM budget splitting it is the aios engine's.
        && !(s.OptimizerOffload == OffloadTier.Nvme && s.OptimizerRamBudget is { Value: > 0 })
        // DeepSpeed's ZeRO training replays no CUDA graphs.
        && !s.CudaGraphs;

    /// <summary>
    /// <paramref name="s"/> with <c>--cuda-graphs</c>, for the tuner to weigh beside it: on one GPU with the aios executor, where
    /// <see cref="CudaGraphRule"/> allows it and <paramref name="s"/> does not have it already; null otherwise. One GPU only: the
    /// graphs have run on a GPU in one process alone (docs/validation/gpu-2026-12-07-session26.md).
    /// </summary>
    internal static TrainingSettings? GraphsVariant(TuneRequest r, TrainingSettings s)
    {
        if (s.CudaGraphs || !r.Hardware.HasGpu || s.Executor != ExecutorKind.Aios || World(s, r.Hardware) != 1) return null;
        var replayed = s with { CudaGraphs = true };
        return CudaGraphRule.Problem(replayed) is null ? replayed : null;
    }

    /// <summary>GPUs taking part in a step (at least 1: a CPU-only machine trains on one device).</summary>
    internal static int World(TrainingSettings s, HardwareProfile hw) =>
        Topology.Of(s, hw).Ranks;

    /// <summary>The fixed settings every candidate starts from: the user's, with a swap folder and buffers that fit the model.</summary>
    internal static TrainingSettings StructureBase(TuneRequest r)
    {
        var b = r.Base;
        return b with
        {
            NvmePath = b.NvmePath ?? (r.Hardware.Drives.Count > 0 ? PlaceholderNvmePath : null),
            GradientOffload = null,
            BufferSize = Math.Max(b.BufferSize, Memory.SwapBufferRule.Required(r.Model, b.Executor)),
            SubGroupSize = Math.Min(b.SubGroupSize, 200_000_000),
            // Set per structure (DefaultOptimizerBudget): it means something only with the optimizer on NVMe.
            OptimizerRamBudget = null,
        };
    }

    /// <summary>The simplest candidate (no ZeRO, nothing offloaded, one sequence): what is wrong with it, the tuner cannot fix.</summary>
    internal static TrainingSettings Simplest(TuneRequest r) => StructureBase(r) with
    {
        ZeroStage = ZeroStage.None, ParamOffload = OffloadTier.None, OptimizerOffload = OffloadTier.None, OptimizerState = Optim.OptimizerStateFormat.Fp32,
        MasterWeights = Optim.MasterWeights.Fp32, Schedule = StepSchedule.DeepSpeed, ActivationCheckpointing = false, MicroBatch = 1, GradAccumulation = 1,
    };

    /// <summary>
    /// Every stage with every parameter and optimizer tier that the planner's rules accept, once: ZeRO-3 and
    /// ZeRO-Infinity are one DeepSpeed stage, so a partitioned placement takes the spelling
    /// <see cref="SettingsRules.Resolve"/> gives it (Infinity when something leaves the GPU for the CPU's
    /// parameters or for NVMe, ZeRO-3 otherwise). NVMe placements need a swap folder.
    /// </summary>
    internal static List<(ZeroStage Stage, OffloadTier Params, OffloadTier Optimizer)> Placements(TrainingSettings b, ModelSpec model, HardwareProfile hw)
    {
        var placements = new List<(ZeroStage, OffloadTier, OffloadTier)>();
        foreach (var stage in Enum.GetValues<ZeroStage>())
            foreach (var param in Enum.GetValues<OffloadTier>())
                foreach (var optimizer in Enum.GetValues<OffloadTier>())
                {
                    // The engine has no optimizer on the GPU beside offloaded parameters (SettingsRules.ResolveWithNotes).
                    if (b.Executor == ExecutorKind.Aios && param != OffloadTier.None && optimizer == OffloadTier.None) continue;
                    var s = b with { ZeroStage = stage, ParamOffload = param, OptimizerOffload = optimizer, GradientOffload = null, Schedule = StepSchedule.DeepSpeed };
                    if (s.PartitionsParameters && stage != (param != OffloadTier.None || s.UsesNvme ? ZeroStage.Infinity : ZeroStage.Zero3)) continue;
                    if (SettingsRules.Check(s, model, hw).Any(p => PlacementFlags.Contains(p.Flag))) continue;
                    placements.Add((stage, param, optimizer));
                }
        return placements;
    }

    /// <summary>
    /// (micro-batch, accumulation) pairs: with the global batch fixed, every micro-batch that divides its share of
    /// one GPU (the accumulation makes up the rest); otherwise powers of two up to the limits. A fixed
    /// <see cref="TuneRequest.MicroBatch"/> is the only micro-batch.
    /// </summary>
    internal static List<(int MicroBatch, int Accumulation)> BatchShapes(TuneRequest r, int world)
    {
        int maxMicro = Math.Max(1, r.MaxMicroBatch);
        var shapes = new List<(int, int)>();
        if (r.MicroBatch is { } fixedMicro)
        {
            // A fixed micro-batch: only the accumulation is left to choose (or nothing, with the global batch fixed too).
            if (fixedMicro < 1) return shapes;
            if (r.GlobalBatch is not { } fixedGlobal) return [.. Accumulations.Where(a => a <= Math.Max(1, r.MaxGradAccumulation)).Select(a => (fixedMicro, a))];
            if (fixedGlobal >= 1 && fixedGlobal % world == 0 && fixedGlobal / world % fixedMicro == 0) shapes.Add((fixedMicro, fixedGlobal / world / fixedMicro));
            return shapes;
        }
        if (r.GlobalBatch is { } global)
        {
            if (global < 1 || global % world != 0) return shapes;
            int perGpu = global / world;
            for (int micro = 1; micro <= Math.Min(perGpu, maxMicro); micro++)
                if (perGpu % micro == 0) shapes.Add((micro, perGpu / micro));
            return shapes;
        }
        foreach (int accumulation in Accumulations.Where(a => a <= Math.Max(1, r.MaxGradAccumulation)))
            foreach (int micro in MicroBatches.Where(m => m <= maxMicro))
                shapes.Add((micro, accumulation));
        return shapes;
    }

    /// <summary>
    /// The optimizer-state formats a placement may use: fp32 with the optimizer on the GPU (the fused device AdamW has no
    /// 8-bit kernel); when offloaded, both formats if <see cref="TuneRequest.AllowEightBitOptimizer"/>, else the base's.
    /// </summary>
    internal static Optim.OptimizerStateFormat[] StateFormats(TuneRequest r, OffloadTier optimizer) =>
        optimizer == OffloadTier.None ? [Optim.OptimizerStateFormat.Fp32]
        : r.AllowEightBitOptimizer ? [Optim.OptimizerStateFormat.Fp32, Optim.OptimizerStateFormat.EightBit]
        : [r.Base.OptimizerState];

    /// <summary>Every structure: placement × optimizer-state format × checkpointing × schedule × batch shape.</summary>
    private static IEnumerable<TrainingSettings> Structures(TuneRequest r)
    {
        var b = StructureBase(r);
        var shapes = BatchShapes(r, World(b, r.Hardware));
        foreach (var (stage, param, optimizer) in Placements(b with { OptimizerState = Optim.OptimizerStateFormat.Fp32 }, r.Model, r.Hardware))
          foreach (var format in StateFormats(r, optimizer))
            // Checkpoints the user put in CPU RAM need checkpointing on (as the CLI turns it on with --offload-activations cpu).
            foreach (bool checkpointing in ActivationOffloadFixed(r) ? [true] : new[] { false, true })
                foreach (var schedule in optimizer == OffloadTier.None ? [StepSchedule.DeepSpeed] : new[] { StepSchedule.DeepSpeed, StepSchedule.Overlapped })
                    foreach (var (micro, accumulation) in shapes)
                    {
                        var s = b with
                        {
                            OptimizerState = format,
                            ZeroStage = stage,
                            ParamOffload = param,
                            OptimizerOffload = optimizer,
                            ActivationCheckpointing = checkpointing,
                            Schedule = schedule,
                            GradAccumulation = accumulation,
                            MicroBatch = micro,
                        };
                        // A schedule the engine refuses with these settings (fp16 overlapped) is not a candidate of the aios executor.
                        if (s.Executor == ExecutorKind.Aios && EngineScheduleRule.Problems(s, Simulation.Program.Topology.Of(s, r.Hardware).Ranks).Any()) continue;
                        // A user's --master-weights split holds where it can run (the optimizer on NVMe); elsewhere the candidate keeps an fp32 master.
                        if (s.MasterWeights == Optim.MasterWeights.Split && SettingsValidator.SplitMasterProblem(s) is not null)
                            s = s with { MasterWeights = Optim.MasterWeights.Fp32 };
                        // --cuda-graphs is searched, not kept: every candidate is made without it, and GraphsVariant adds it
                        // beside those it can run, so DeepSpeed's ranking always has the candidates without it.
                        s = s with { CudaGraphs = false };
                        // With the optimizer on NVMe the engine keeps what RAM allows of it there; DeepSpeed's schedule
                        // also gets the all-NVMe variant, which DeepSpeed itself can run.
                        var budgeted = s with { OptimizerRamBudget = DefaultOptimizerBudget(r, s) };
                        yield return budgeted;
                        // The layers replayed from CUDA graphs where they can be (one GPU, resident, no checkpointing): the
                        // same math, the host's dispatch gone from the step, a little more device memory.
                        if (GraphsVariant(r, budgeted) is { } replayed) yield return replayed;
                        if (budgeted.OptimizerRamBudget is not null && r.Base.OptimizerRamBudget is null && schedule == StepSchedule.DeepSpeed)
                            yield return s;
                    }
    }
}

using AiOs.Planner.Hardware;
using AiOs.Planner.Models;

namespace AiOs.Planner.Settings;

/// <summary>A setting that cannot work, with the command-line flag to change.</summary>
public sealed record SettingsProblem(string Flag, string Message)
{
    public override string ToString() => $"{Message} (change {Flag})";
}

/// <summary>Resolves defaults that depend on other settings and finds impossible combinations.</summary>
public static class SettingsRules
{
    /// <summary>
    /// Fills in what the user left implicit: offloading with no stage picks the stage DeepSpeed needs
    /// (parameters or NVMe → ZeRO-Infinity; optimizer to CPU → ZeRO-2); NVMe under ZeRO-3 is ZeRO-Infinity.
    /// </summary>
    public static TrainingSettings Resolve(TrainingSettings s, bool stageGiven)
    {
        if (!stageGiven && s.ZeroStage == ZeroStage.None)
        {
            if (s.ParamOffload != OffloadTier.None || s.UsesNvme) return s with { ZeroStage = ZeroStage.Infinity };
            if (s.OptimizerOffload != OffloadTier.None) return s with { ZeroStage = ZeroStage.Zero2 };
        }
        if (s.ZeroStage == ZeroStage.Zero3 && s.UsesNvme) return s with { ZeroStage = ZeroStage.Infinity };
        return s;
    }

    /// <summary>Every problem with <paramref name="s"/> for this model and hardware; empty when it can run.</summary>
    public static IReadOnlyList<SettingsProblem> Check(TrainingSettings s, ModelSpec model, HardwareProfile hardware)
    {
        var problems = new List<SettingsProblem>();
        void Add(string flag, string message) => problems.Add(new SettingsProblem(flag, message));

        if (s.MicroBatch < 1) Add("--micro-batch", $"micro-batch must be at least 1 (found {s.MicroBatch})");
        if (s.SeqLen < 1) Add("--seq-len", $"sequence length must be at least 1 (found {s.SeqLen})");
        else if (s.SeqLen > model.MaxSeqLen && model.Positions == PositionKind.Learned)
            Add("--seq-len", $"sequence length {s.SeqLen} exceeds {model.Name}'s learned positions ({model.MaxSeqLen})");
        if (s.GradAccumulation < 1) Add("--grad-accumulation", $"gradient accumulation must be at least 1 (found {s.GradAccumulation})");
        if (s.BufferCount < 1) Add("--buffer-count", $"buffer_count must be at least 1 (found {s.BufferCount})");
        if (s.OptimizerBufferCount < 1) Add("--optimizer-buffer-count", $"optimizer buffer_count must be at least 1 (found {s.OptimizerBufferCount})");
        if (s.BufferSize < 1) Add("--buffer-size", $"buffer_size must be at least 1 element (found {s.BufferSize})");
        if (s.SubGroupSize < 1) Add("--sub-group-size", $"sub_group_size must be at least 1 element (found {s.SubGroupSize})");
        if (s.MaxInCpu < 0) Add("--max-in-cpu", $"max_in_cpu cannot be negative (found {s.MaxInCpu})");
        if (s.PrefetchDepth < 0) Add("--prefetch-depth", $"prefetch depth cannot be negative (found {s.PrefetchDepth})");
        if (s.Aio.BlockSize.Value < 4096 || s.Aio.BlockSize.Value % 4096 != 0)
            Add("--aio-block-size", $"AIO block size must be a positive multiple of 4 KiB for O_DIRECT (found {s.Aio.BlockSize.Value} bytes)");
        if (s.Aio.QueueDepth < 1) Add("--aio-queue-depth", $"AIO queue depth must be at least 1 (found {s.Aio.QueueDepth})");
        if (s.Aio.IntraOpParallelism < 1) Add("--aio-threads", $"AIO intra-op parallelism must be at least 1 (found {s.Aio.IntraOpParallelism})");

        if (s.ParamOffload != OffloadTier.None && !s.PartitionsParameters)
            Add("--zero-stage", $"parameter offload needs ZeRO-3 or Infinity (found {Name(s.ZeroStage)})");
        if (s.OptimizerOffload != OffloadTier.None && s.ZeroStage == ZeroStage.None)
            Add("--zero-stage", "optimizer offload needs a ZeRO stage (zero1, zero2, zero3 or infinity)");
        if (s.OptimizerOffload == OffloadTier.Nvme && !s.PartitionsParameters && s.ZeroStage != ZeroStage.None)
            Add("--zero-stage", $"optimizer offload to NVMe needs ZeRO-3 or Infinity in DeepSpeed (found {Name(s.ZeroStage)})");
        if (s.EffectiveGradientOffload != OffloadTier.None && s.OptimizerOffload == OffloadTier.None)
            Add("--nvme-offload-gradients", "gradients can leave the GPU only when the optimizer is offloaded (the CPU optimizer consumes them)");
        if (s.UsesNvme && string.IsNullOrWhiteSpace(s.NvmePath))
            Add("--nvme-offload-path", "NVMe offload needs a folder for swap files");
        if (s.ParamOffload == OffloadTier.Nvme && model.LargestTensorElements() > s.BufferSize)
            Add("--buffer-size", $"buffer_size ({s.BufferSize:N0} elements) is smaller than {model.Name}'s largest tensor ({model.LargestTensorElements():N0} elements); DeepSpeed refuses this");
        if (s.Schedule == StepSchedule.Overlapped && s.OptimizerOffload == OffloadTier.None)
            Add("--schedule", "the overlapped schedule updates parameters on the CPU during backward; it needs the optimizer offloaded");

        int gpus = s.GpusPerNode ?? hardware.GpusPerNode;
        if (hardware.GpusPerNode == 0)
        {
            if (s.GpusPerNode is > 0)
                Add("--gpus", $"{hardware.Name} has no GPU; plan for a GPU profile or leave --gpus out");
        }
        else if (gpus < 1 || gpus > hardware.GpusPerNode)
        {
            Add("--gpus", $"GPUs per node must be 1..{hardware.GpusPerNode} on {hardware.Name} (found {gpus})");
        }
        if (s.Nodes is < 1) Add("--nodes", $"nodes must be at least 1 (found {s.Nodes})");
        if (s.Nodes is > 1 && hardware.Network is null)
            Add("--nodes", $"{hardware.Name} describes no node-to-node network; use a profile with a network section for several nodes");
        return problems;
    }

    /// <summary>The CLI spelling of a stage.</summary>
    public static string Name(ZeroStage stage) => stage.ToString().ToLowerInvariant();
}

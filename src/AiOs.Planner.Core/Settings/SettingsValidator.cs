using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;

namespace AiOs.Planner.Settings;

/// <summary>
/// The one check of training settings that needs no hardware profile: every field in its range and a defined
/// choice, the AIO block aligned for O_DIRECT, and the sequence within a learned-position model's table. Every
/// command that takes settings (plan, ds-config, tune, train, whatif, and the engine) runs it;
/// <see cref="SettingsRules.Check"/> adds DeepSpeed's combinations and what depends on the machine.
/// </summary>
public static class SettingsValidator
{
    /// <summary>Most sequences per micro-batch, micro-batches per step, and layers fetched ahead.</summary>
    public const int MaxMicroBatch = 65_536, MaxGradAccumulation = 65_536, MaxPrefetchDepth = ModelSpec.MaxLayers;
    /// <summary>Most tokens in one micro-batch (micro-batch × sequence): 2^24, so activation bytes stay in 64 bits.</summary>
    public const long MaxTokensPerMicroBatch = 1L << 24;
    /// <summary>Most swap buffers of either kind.</summary>
    public const int MaxBufferCount = 1024;
    /// <summary>Most elements in a swap buffer (above the largest tensor a bounded model has, 2^42).</summary>
    public const long MaxBufferElements = 1L << 43;
    /// <summary>Most elements for max_in_cpu and sub_group_size (above the largest bounded model, 7·10^16 parameters).</summary>
    public const long MaxStateElements = 1L << 57;
    public const int MaxGpus = HardwareBounds.MaxGpusPerNode, MaxNodes = HardwareBounds.MaxNodes;

    /// <summary>
    /// Every problem with <paramref name="s"/> that no machine or engine could get past; <paramref name="model"/>
    /// adds the model-dependent ones when known. Each names its flag and its settings-file field.
    /// </summary>
    public static IReadOnlyList<SettingsProblem> Problems(TrainingSettings s, ModelSpec? model = null)
    {
        var problems = FieldProblems(s);
        void Add(string flag, string field, string message) => problems.Add(new SettingsProblem(flag, message) { Field = field });

        if (s.OptimizerRamBudget is { } budget && s.OptimizerOffload != OffloadTier.Nvme)
            Add("--optimizer-ram-budget", "$.optimizer_ram_budget",
                $"a RAM budget of {budget} splits optimizer sub-groups between RAM and NVMe, but the optimizer is {(s.OptimizerOffload == OffloadTier.None ? "on the GPU" : "all in CPU RAM already")}: add --offload-optimizer nvme (with --nvme-offload-path), or drop --optimizer-ram-budget");
        if (model is not null && s.SeqLen > model.MaxSeqLen && model.Positions == PositionKind.Learned)
            Add("--seq-len", "$.seq_len", $"sequence length {s.SeqLen} exceeds {model.Name}'s max_seq_len ({model.MaxSeqLen}, learned positions)");
        // The aios engine keeps block-wise 8-bit moments on the device too (resident runs: its device 8-bit AdamW); DeepSpeed's
        // GPU optimizer has no 8-bit state, so there the moments must live in the (aios) CPU optimizer, which DeepSpeed cannot run either.
        if (s.OptimizerState == Optim.OptimizerStateFormat.EightBit && s.OptimizerOffload == OffloadTier.None && s.Executor == ExecutorKind.DeepSpeed)
            Add("--optimizer-state", "$.optimizer_state", "DeepSpeed's GPU optimizer has no 8-bit state: use --optimizer-state fp32 (8-bit state on the GPU runs only in the aios engine, --executor aios)");
        if (s.MasterWeights == Optim.MasterWeights.Split && SplitMasterProblem(s) is { } split)
            Add("--master-weights", "$.master_weights", split);
        // Every executor: the delayed update only exists for a CPU optimizer (DeepSpeed cannot run it at all, see DeepSpeedProblems' callers).
        if (s.Schedule == StepSchedule.Delayed && s.OptimizerOffload == OffloadTier.None)
            Add("--schedule", "$.schedule", "the delayed schedule runs step i's CPU optimizer while the device computes step i+1; with the optimizer on the device there is nothing to hide: use --offload-optimizer cpu|nvme or --schedule deepspeed");
        return problems;
    }

    /// <summary>
    /// Why <c>--master-weights split</c> cannot run with <paramref name="s"/>, or null. The optimizer rebuilds each master from
    /// the bf16 parameter (its high half) and the remainder in its swapped state, so it needs bf16 parameters off the device
    /// (read and written by the host) and the state on NVMe (where the 2 bytes per parameter are saved); the aios engine only.
    /// </summary>
    public static string? SplitMasterProblem(TrainingSettings s) =>
        s.Executor != ExecutorKind.Aios ? "split master weights run only in the aios engine (DeepSpeed's optimizer keeps an fp32 master): use --executor aios or --master-weights fp32"
        : s.Precision != Precision.Bf16 ? $"split master weights keep the master's high half in bf16 parameters, but the precision is {s.Precision.ToString().ToLowerInvariant()}: use --precision bf16 or --master-weights fp32"
        : s.OptimizerOffload != OffloadTier.Nvme ? $"split master weights save bytes of optimizer state swapped with NVMe, but the optimizer is {(s.OptimizerOffload == OffloadTier.None ? "on the device" : "in CPU RAM")}: use --offload-optimizer nvme or --master-weights fp32"
        : s.ParamOffload == OffloadTier.None ? "split master weights read the master's high half from the host copy of the bf16 parameters, but they are on the device: use --offload-params cpu|nvme or --master-weights fp32"
        : s.Schedule == StepSchedule.Delayed ? "split master weights are not supported with the delayed schedule (its update writes a spare copy of the parameters): use --schedule deepspeed|overlapped or --master-weights fp32"
        : null;

    /// <summary>
    /// Combinations DeepSpeed cannot run (offloads the ZeRO stage cannot hold, gradients leaving the GPU without
    /// the optimizer, the overlapped schedule without a CPU optimizer). The aios engine runs some of them, so
    /// these are the planner's (<see cref="SettingsRules.Check"/>), not every command's.
    /// </summary>
    public static IReadOnlyList<SettingsProblem> DeepSpeedProblems(TrainingSettings s)
    {
        var problems = new List<SettingsProblem>();
        void Add(string flag, string field, string message) => problems.Add(new SettingsProblem(flag, message) { Field = field });
        if (s.ParamOffload != OffloadTier.None && !s.PartitionsParameters)
            Add("--zero-stage", "$.zero_stage", $"parameter offload needs ZeRO-3 or Infinity (found {SettingsRules.Name(s.ZeroStage)})");
        if (s.OptimizerOffload != OffloadTier.None && s.ZeroStage == ZeroStage.None)
            Add("--zero-stage", "$.zero_stage", "optimizer offload needs a ZeRO stage (zero1, zero2, zero3 or infinity)");
        if (s.OptimizerOffload == OffloadTier.Nvme && !s.PartitionsParameters && s.ZeroStage != ZeroStage.None)
            Add("--zero-stage", "$.zero_stage", $"optimizer offload to NVMe needs ZeRO-3 or Infinity in DeepSpeed (found {SettingsRules.Name(s.ZeroStage)})");
        if (s.EffectiveGradientOffload != OffloadTier.None && s.OptimizerOffload == OffloadTier.None)
            Add("--nvme-offload-gradients", "$.gradient_offload", "gradients can leave the GPU only when the optimizer is offloaded (the CPU optimizer consumes them)");
        if (s.Schedule == StepSchedule.Overlapped && s.OptimizerOffload == OffloadTier.None)
            Add("--schedule", "$.schedule", "the overlapped schedule updates parameters on the CPU during backward; it needs the optimizer offloaded");
        return problems;
    }

    /// <summary>Each field on its own: a defined enum value, a number in its range, an aligned AIO block.</summary>
    public static List<SettingsProblem> FieldProblems(TrainingSettings s)
    {
        var problems = new List<SettingsProblem>();
        void Add(string flag, string field, string message) => problems.Add(new SettingsProblem(flag, message) { Field = field });
        void Range(string flag, string field, string what, long value, long min, long max)
        {
            if (value < min || value > max) Add(flag, field, $"{what} must be between {min:N0} and {max:N0} (found {value:N0})");
        }

        Enum<ZeroStage>(problems, "--zero-stage", "$.zero_stage", s.ZeroStage);
        Enum<OffloadTier>(problems, "--offload-params", "$.param_offload", s.ParamOffload);
        Enum<OffloadTier>(problems, "--offload-optimizer", "$.optimizer_offload", s.OptimizerOffload);
        if (s.GradientOffload is { } g) Enum<OffloadTier>(problems, "--offload-gradients", "$.gradient_offload", g);
        Enum<Precision>(problems, "--precision", "$.precision", s.Precision);
        Enum<StepSchedule>(problems, "--schedule", "$.schedule", s.Schedule);
        Enum<ExecutorKind>(problems, "--executor", "$.executor", s.Executor);
        Enum<Optim.OptimizerStateFormat>(problems, "--optimizer-state", "$.optimizer_state", s.OptimizerState);
        Enum<Optim.MasterWeights>(problems, "--master-weights", "$.master_weights", s.MasterWeights);

        Range("--micro-batch", "$.micro_batch", "micro-batch", s.MicroBatch, 1, MaxMicroBatch);
        Range("--seq-len", "$.seq_len", "sequence length", s.SeqLen, 1, ModelSpec.MaxSequence);
        if (s.MicroBatch >= 1 && s.SeqLen >= 1 && (long)s.MicroBatch * s.SeqLen > MaxTokensPerMicroBatch)
            Add("--micro-batch", "$.micro_batch", $"micro-batch × sequence length is {(long)s.MicroBatch * s.SeqLen:N0} tokens; at most {MaxTokensPerMicroBatch:N0} per micro-batch (lower --micro-batch or --seq-len)");
        Range("--grad-accumulation", "$.grad_accumulation", "gradient accumulation", s.GradAccumulation, 1, MaxGradAccumulation);
        Range("--buffer-count", "$.buffer_count", "buffer_count", s.BufferCount, 1, MaxBufferCount);
        Range("--optimizer-buffer-count", "$.optimizer_buffer_count", "optimizer buffer_count", s.OptimizerBufferCount, 1, MaxBufferCount);
        Range("--buffer-size", "$.buffer_size", "buffer_size (elements)", s.BufferSize, 1, MaxBufferElements);
        Range("--sub-group-size", "$.sub_group_size", "sub_group_size (elements)", s.SubGroupSize, 1, MaxStateElements);
        Range("--max-in-cpu", "$.max_in_cpu", "max_in_cpu (elements)", s.MaxInCpu, 0, MaxStateElements);
        if (s.OptimizerRamBudget is { } ramBudget && ramBudget.Value < 0)
            Add("--optimizer-ram-budget", "$.optimizer_ram_budget", $"the optimizer RAM budget cannot be negative (found {ramBudget.Value:N0} bytes); give 0 (all on NVMe) or a size such as 60G");
        Range("--prefetch-depth", "$.prefetch_depth", "prefetch depth", s.PrefetchDepth, 0, MaxPrefetchDepth);
        if (s.DelayedWarmupSteps < 1)
            Add("--delayed-warmup-steps", "$.delayed_warmup_steps", $"the delayed schedule's warm-up must be at least 1 step (found {s.DelayedWarmupSteps:N0}): the first step has no earlier update to overlap; give --delayed-warmup-steps 1 or more");
        if (s.Aio is null)
        {
            Add("--aio-block-size", "$.aio", "the aio section must be an object");
        }
        else
        {
            long block = s.Aio.BlockSize.Value;
            if (block < 4096 || block > HardwareBounds.MaxAioBlockBytes || block % 4096 != 0)
                Add("--aio-block-size", "$.aio.block_size", $"AIO block size must be a multiple of 4 KiB (4096 bytes) for O_DIRECT, from 4K to 1G (found {block:N0} bytes)");
            Range("--aio-queue-depth", "$.aio.queue_depth", "AIO queue depth", s.Aio.QueueDepth, 1, HardwareBounds.MaxAioQueueDepth);
            Range("--aio-threads", "$.aio.intra_op_parallelism", "AIO intra-op parallelism", s.Aio.IntraOpParallelism, 1, HardwareBounds.MaxAioThreads);
        }
        if (s.GpusPerNode is { } gpus) Range("--gpus", "$.gpus_per_node", "GPUs per node", gpus, 0, MaxGpus);
        if (s.Nodes is { } nodes) Range("--nodes", "$.nodes", "nodes", nodes, 1, MaxNodes);
        if (s.NvmePath is { } path && string.IsNullOrWhiteSpace(path))
            Add("--nvme-offload-path", "$.nvme_path", "the NVMe folder is empty; give a folder or leave it out");
        return problems;
    }

    /// <summary>
    /// Returns <paramref name="s"/>, or throws one <see cref="DescriptionException"/> listing every problem of
    /// <see cref="Problems"/>, each with the flag to change. <paramref name="settingsFile"/>, when the settings
    /// started from one, is named too.
    /// </summary>
    public static TrainingSettings Validated(this TrainingSettings s, ModelSpec? model, string? settingsFile = null)
    {
        var problems = Problems(s, model);
        if (problems.Count == 0) return s;
        string where = settingsFile is null ? "The settings are not valid" : $"The settings (from {settingsFile} and the flags) are not valid";
        throw Failure(where, problems.Select(p => $"{p.Flag}: {p.Message}"), settingsFile, problems[0].Flag);
    }

    /// <summary>
    /// Returns the settings read from <paramref name="file"/>, or throws one error naming the file and, for each
    /// field out of its range, the field, the value, the range and the flag that overrides it. Combinations are
    /// left to <see cref="Validated"/> after the flags are applied (a flag may mend them).
    /// </summary>
    public static TrainingSettings ValidatedFile(this TrainingSettings s, string file)
    {
        var problems = FieldProblems(s);
        if (problems.Count == 0) return s;
        throw Failure($"{file} is not valid", problems.Select(p => $"{p.Field}: {p.Message} (flag {p.Flag})"), file, problems[0].Field);
    }

    private static DescriptionException Failure(string where, IEnumerable<string> lines, string? file, string? field)
    {
        string nl = System.Environment.NewLine;
        return new DescriptionException($"{where}:{nl}  - " + string.Join(nl + "  - ", lines)) { File = file, Field = field };
    }

    private static void Enum<TEnum>(List<SettingsProblem> problems, string flag, string field, TEnum value) where TEnum : struct, System.Enum
    {
        if (!System.Enum.IsDefined(value))
            problems.Add(new SettingsProblem(flag, $"{Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture)} is not one of {string.Join(", ", System.Enum.GetNames<TEnum>().Select(n => n.ToLowerInvariant()))}") { Field = field });
    }
}

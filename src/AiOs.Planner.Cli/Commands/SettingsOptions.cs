using System.CommandLine;
using System.CommandLine.Parsing;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Cli.Commands;

/// <summary>
/// The flags every planning command shares (model, hardware and all training settings), and their
/// translation into <see cref="TrainingSettings"/>. Flag names are the original plan's where it had one.
/// </summary>
public sealed class SettingsOptions
{
    private static readonly TrainingSettings Defaults = new();

    /// <param name="required">Whether --model and --hardware must be given.</param>
    public SettingsOptions(bool required = true)
    {
        Model = new("--model", "-m") { Description = "Bundled model name, or a path to a models/*.json or Hugging Face config.json", Required = required };
        Hardware = new("--hardware", "-H") { Description = "Bundled profile name or a path to a profile JSON", Required = required };
    }

    public Option<string> Model { get; }
    public Option<string> Hardware { get; }
    public Option<ZeroStage?> ZeroStage { get; } = new("--zero-stage") { Description = "none|zero1|zero2|zero3|infinity (default: what the offload flags need, else none); infinity alone puts parameters and optimizer on NVMe", CustomParser = ParseNullableEnum<ZeroStage> };
    public Option<OffloadTier?> OffloadParams { get; } = new("--offload-params") { Description = "Where parameters live: none|cpu|nvme", CustomParser = ParseNullableEnum<OffloadTier> };
    public Option<OffloadTier?> OffloadOptimizer { get; } = new("--offload-optimizer") { Description = "Where optimizer states live: none|cpu|nvme", CustomParser = ParseNullableEnum<OffloadTier> };
    public Option<OffloadTier?> OffloadGradients { get; } = new("--offload-gradients") { Description = "Where fp32 gradients live: none|cpu|nvme (default: with the optimizer)", CustomParser = ParseNullableEnum<OffloadTier> };
    public Option<string?> NvmePath { get; } = new("--nvme-offload-path") { Description = $"Folder for NVMe swap files, on the fast NVMe drive; giving it offloads parameters and optimizer to NVMe (under zero3/infinity or no stage) unless --no-nvme-offload-… says otherwise (default with --zero-stage infinity: ./{DefaultOffloadFolder.Name})" };
    public Option<bool> NvmeParams { get; } = new("--nvme-offload-params") { Description = "Offload parameters to NVMe" };
    public Option<bool> NoNvmeParams { get; } = new("--no-nvme-offload-params") { Description = "Keep parameters off NVMe" };
    public Option<bool> NvmeOptimizer { get; } = new("--nvme-offload-optimizer") { Description = "Offload optimizer states to NVMe" };
    public Option<bool> NoNvmeOptimizer { get; } = new("--no-nvme-offload-optimizer") { Description = "Keep optimizer states off NVMe" };
    public Option<bool> NvmeGradients { get; } = new("--nvme-offload-gradients") { Description = "Put fp32 gradient partitions on NVMe" };
    public Option<Bytes?> AioBlockSize { get; } = new("--aio-block-size") { Description = "AIO block_size: bytes per I/O request (e.g. 1M, 262144)", CustomParser = ParseBytes };
    public Option<int?> AioQueueDepth { get; } = new("--aio-queue-depth") { Description = "AIO queue_depth: requests in flight per thread" };
    public Option<int?> AioThreads { get; } = new("--aio-threads") { Description = "AIO intra_op_parallelism: threads per read or write" };
    public Option<bool> PinMemory { get; } = new("--pin-memory") { Description = "Page-lock offloaded CPU tensors (default)" };
    public Option<bool> NoPinMemory { get; } = new("--no-pin-memory") { Description = "Use pageable memory for offloaded CPU tensors" };
    public Option<int?> BufferCount { get; } = new("--buffer-count") { Description = $"offload_param.buffer_count (default {Defaults.BufferCount})" };
    public Option<long?> BufferSize { get; } = new("--buffer-size") { Description = $"offload_param.buffer_size in elements (default {Defaults.BufferSize:G})" };
    public Option<long?> MaxInCpu { get; } = new("--max-in-cpu") { Description = $"offload_param.max_in_cpu in elements (default {Defaults.MaxInCpu:G}): with --offload-params nvme, the aios engine keeps whole units up to this many parameter elements (per GPU) in CPU RAM and reads only the rest from NVMe; 0 puts all on NVMe" };
    public Option<int?> OptimizerBufferCount { get; } = new("--optimizer-buffer-count") { Description = $"offload_optimizer.buffer_count (default {Defaults.OptimizerBufferCount})" };
    public Option<Bytes?> OptimizerRamBudget { get; } = new("--optimizer-ram-budget") { Description = "With the optimizer on NVMe: host RAM for optimizer sub-groups kept out of NVMe (e.g. 60G; the sub-groups updated last stay in RAM, the rest are swapped); 0 or absent: all on NVMe. Not a DeepSpeed setting", CustomParser = ParseBytes };
    public Option<long?> SubGroupSize { get; } = new("--sub-group-size") { Description = $"sub_group_size in elements (default {Defaults.SubGroupSize:G})" };
    public Option<bool> PipelineRead { get; } = new("--pipeline-read") { Description = "offload_optimizer.pipeline_read" };
    public Option<bool> PipelineWrite { get; } = new("--pipeline-write") { Description = "offload_optimizer.pipeline_write" };
    public Option<int?> PrefetchDepth { get; } = new("--prefetch-depth") { Description = $"Layers fetched ahead of the one computing (default {Defaults.PrefetchDepth})" };
    public Option<int> MicroBatch { get; } = new("--micro-batch") { Description = "Sequences per GPU per micro-step", DefaultValueFactory = _ => Defaults.MicroBatch };
    public Option<int> SeqLen { get; } = new("--seq-len") { Description = $"Tokens per sequence (default: the smaller of {Defaults.SeqLen} and the model's max_seq_len)", DefaultValueFactory = _ => Defaults.SeqLen };
    public Option<int> GradAccumulation { get; } = new("--grad-accumulation") { Description = "Micro-batches per optimizer step", DefaultValueFactory = _ => Defaults.GradAccumulation };
    public Option<Precision> Precision { get; } = new("--precision") { Description = "fp32|bf16|fp16", DefaultValueFactory = _ => Defaults.Precision, CustomParser = ParseEnum<Precision> };
    public Option<bool> GradCheckpointing { get; } = new("--grad-checkpointing") { Description = "Activation checkpointing: keep layer inputs, recompute in backward" };
    public Option<int?> Gpus { get; } = new("--gpus") { Description = "GPUs per node (default: all of the profile's)" };
    public Option<int?> Nodes { get; } = new("--nodes") { Description = "Nodes (default: the profile's)" };
    public Option<StepSchedule> Schedule { get; } = new("--schedule") { Description = "deepspeed (optimizer after backward) | overlapped (each layer updated during backward) | delayed (step i's CPU optimizer runs during step i+1, one step stale; needs --offload-optimizer cpu|nvme)", DefaultValueFactory = _ => Defaults.Schedule, CustomParser = ParseEnum<StepSchedule> };
    public Option<int?> DelayedWarmupSteps { get; } = new("--delayed-warmup-steps") { Description = $"With --schedule delayed: steps 1..N update serially before the delayed update starts (ZeRO-Offload's warm-up; default {Defaults.DelayedWarmupSteps}, at least 1)" };
    public Option<ExecutorKind> Executor { get; } = new("--executor") { Description = "What the prediction describes: aios (the bundled engine, `aios train`) | deepspeed (DeepSpeed with PyTorch, for the emitted config)", DefaultValueFactory = _ => Defaults.Executor, CustomParser = ParseEnum<ExecutorKind> };
    public Option<OffloadTier?> OffloadActivations { get; } = new("--offload-activations") { Description = "Where activation checkpoints wait for backward: none (the device) | cpu (DeepSpeed's cpu_checkpointing; needs --grad-checkpointing)", CustomParser = ParseNullableEnum<OffloadTier> };
    public Option<int?> TilingFactor { get; } = new("--tiling-factor") { Description = $"Memory-centric tiling: each layer's weight matrices fetched in this many tiles (default {Defaults.TilingFactor}, none)" };
    public Option<long?> PrefetchBucketSize { get; } = new("--prefetch-bucket-size") { Description = "stage3_prefetch_bucket_size in elements (default: DeepSpeed's 5e7 while --prefetch-depth > 0)" };
    public Option<long?> MaxLiveParameters { get; } = new("--max-live-parameters") { Description = $"stage3_max_live_parameters in elements (default {Defaults.MaxLiveParameters:G})" };
    public Option<long?> ParamPersistenceThreshold { get; } = new("--param-persistence-threshold") { Description = "stage3_param_persistence_threshold in elements (default 10 × hidden)" };
    public Option<Optim.OptimizerStateFormat?> OptimizerState { get; } = new("--optimizer-state") { Description = "How the CPU optimizer stores Adam's moments: fp32 (default, 12 B/param with the master) | 8bit (block-wise, about 6 B/param; needs the optimizer offloaded)", CustomParser = ParseOptimizerState };
    public Option<Optim.MasterWeights?> MasterWeights { get; } = new("--master-weights") { Description = "How the CPU optimizer stores fp32 master weights: fp32 (default, 4 B/param in the state) | split (the bf16 parameter is the high half, 2 B/param of remainder in the state; aios engine, bf16, optimizer on NVMe, parameters offloaded)", CustomParser = ParseNullableEnum<Optim.MasterWeights> };
    public Option<HeadLoss?> HeadLoss { get; } = new("--head-loss") { Description = "The aios engine's head and loss: auto (default: unfused, the faster, where it fits the GPU or --gpu-memory-limit; else the fused, chunked head where it saves bytes) | fused | unfused", CustomParser = ParseNullableEnum<HeadLoss> };
    public Option<bool> CudaGraphs { get; } = new("--cuda-graphs") { Description = "The aios engine with nothing offloaded on a GPU: capture each layer's forward and backward as CUDA graphs at the warm-up and replay them every step (for launch-bound runs: small micro-batches, small models); not with --grad-checkpointing" };
    public Option<string?> SettingsFile { get; } = new("--settings") { Description = "Start from a settings file (as written by `aios tune --out`); flags given as well override it" };

    /// <summary>Adds every option to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        foreach (var option in All()) command.Options.Add(option);
    }

    private IEnumerable<Option> All() =>
    [
        Model, Hardware, ZeroStage, OffloadParams, OffloadOptimizer, OffloadGradients, NvmePath, NvmeParams, NoNvmeParams,
        NvmeOptimizer, NoNvmeOptimizer, NvmeGradients, AioBlockSize, AioQueueDepth, AioThreads, PinMemory, NoPinMemory,
        BufferCount, BufferSize, MaxInCpu, OptimizerBufferCount, OptimizerRamBudget, SubGroupSize, PipelineRead, PipelineWrite, PrefetchDepth,
        MicroBatch, SeqLen, GradAccumulation, Precision, GradCheckpointing, Gpus, Nodes, Schedule, DelayedWarmupSteps, Executor, SettingsFile,
        OffloadActivations, TilingFactor, PrefetchBucketSize, MaxLiveParameters, ParamPersistenceThreshold, OptimizerState, MasterWeights, HeadLoss, CudaGraphs,
    ];

    public ModelSpec LoadModel(ParseResult r) => ModelCatalog.Default.Load(r.GetValue(Model)!);

    public HardwareProfile LoadHardware(ParseResult r) => ProfileCatalog.Default.Load(r.GetValue(Hardware)!);

    /// <summary>
    /// Builds the settings the flags describe, on top of <c>--settings FILE</c> when given (a flag the user
    /// typed wins over the file), with stage defaults resolved by <see cref="SettingsRules.Resolve"/>, and checks
    /// them with <see cref="SettingsValidator"/>: the file's values on their own (naming the file and its fields),
    /// then the result against --model when given (naming the flags). Contradicting flags are refused, naming both.
    /// </summary>
    /// <exception cref="DescriptionException">A conflict, or a setting out of its range.</exception>
    public TrainingSettings Build(ParseResult r) => BuildWithNotes(r).Settings;

    /// <summary>
    /// <see cref="Build"/>, with a note for each default it filled in from another setting (the stage, the
    /// offload folder) and each implication it did not apply because a flag the user typed said otherwise.
    /// </summary>
    /// <exception cref="DescriptionException">A conflict, or a setting out of its range.</exception>
    public SettingsResolution BuildWithNotes(ParseResult r)
    {
        string? file = r.GetValue(SettingsFile);
        ModelSpec? model = string.IsNullOrWhiteSpace(r.GetValue(Model)) ? null : LoadModel(r);
        var start = file is null ? Defaults : DescriptionJson.ReadFile<TrainingSettings>(file).ValidatedFile(file);
        bool Given(Option option) => r.GetResult(option) is { Implicit: false };
        RefuseConflicts(r, Given);
        T Pick<T>(Option<T> option, T fallback) => Given(option) ? r.GetValue(option)! : fallback;
        T PickNullable<T>(Option<T?> option, T fallback) where T : struct => Given(option) && r.GetValue(option) is { } v ? v : fallback;

        string? nvmePath = Pick(NvmePath, start.NvmePath);
        bool pathGiven = Given(NvmePath);
        var notes = new List<string>();
        ZeroStage? typedStage = Given(ZeroStage) ? r.GetValue(ZeroStage) : null;
        // A path implies NVMe placement only under a stage that can hold it: a typed zero1/zero2/none wins over
        // what the path implies (issue 12 item 2), and only the tiers the user typed are placed.
        bool pathImplies = pathGiven && typedStage is null or Settings.ZeroStage.Zero3 or Settings.ZeroStage.Infinity;
        if (pathGiven && !pathImplies)
            notes.Add($"--nvme-offload-path with --zero-stage {SettingsRules.Name(typedStage!.Value)}: placed nothing on NVMe by implication (only ZeRO-3 offloads parameters); the offload flags you gave decide");
        // The original plan's infinity: ZeRO-3 with parameters and optimizer on NVMe unless a flag says otherwise.
        bool infinityImplies = typedStage == Settings.ZeroStage.Infinity;
        var aio = start.Aio with
        {
            BlockSize = PickNullable(AioBlockSize, start.Aio.BlockSize),
            QueueDepth = PickNullable(AioQueueDepth, start.Aio.QueueDepth),
            IntraOpParallelism = PickNullable(AioThreads, start.Aio.IntraOpParallelism),
        };
        OffloadTier PickTier(Option<OffloadTier?> tier, Option<bool> nvme, Option<bool> noNvme, OffloadTier fallback)
        {
            if (Given(tier) || Given(nvme) || Given(noNvme) || pathImplies)
                return Tier(r.GetValue(tier), r.GetValue(nvme), r.GetValue(noNvme), pathImplies);
            return infinityImplies && fallback == OffloadTier.None ? OffloadTier.Nvme : fallback;
        }
        var settings = start with
        {
            ZeroStage = PickNullable(ZeroStage, start.ZeroStage),
            ParamOffload = PickTier(OffloadParams, NvmeParams, NoNvmeParams, start.ParamOffload),
            OptimizerOffload = PickTier(OffloadOptimizer, NvmeOptimizer, NoNvmeOptimizer, start.OptimizerOffload),
            GradientOffload = r.GetValue(NvmeGradients) ? OffloadTier.Nvme : Given(OffloadGradients) ? r.GetValue(OffloadGradients) : start.GradientOffload,
            NvmePath = nvmePath,
            PinMemory = Given(NoPinMemory) ? false : Given(PinMemory) || start.PinMemory,
            BufferCount = PickNullable(BufferCount, start.BufferCount),
            BufferSize = PickNullable(BufferSize, start.BufferSize),
            MaxInCpu = PickNullable(MaxInCpu, start.MaxInCpu),
            OptimizerBufferCount = PickNullable(OptimizerBufferCount, start.OptimizerBufferCount),
            SubGroupSize = PickNullable(SubGroupSize, start.SubGroupSize),
            OptimizerRamBudget = Given(OptimizerRamBudget) ? r.GetValue(OptimizerRamBudget) : start.OptimizerRamBudget,
            PipelineRead = Given(PipelineRead) || start.PipelineRead,
            PipelineWrite = Given(PipelineWrite) || start.PipelineWrite,
            PrefetchDepth = PickNullable(PrefetchDepth, start.PrefetchDepth),
            Aio = aio,
            MicroBatch = Pick(MicroBatch, start.MicroBatch),
            SeqLen = Given(SeqLen) ? r.GetValue(SeqLen) : file is null ? DefaultSeqLen(model) : start.SeqLen,
            GradAccumulation = Pick(GradAccumulation, start.GradAccumulation),
            Precision = Pick(Precision, start.Precision),
            ActivationCheckpointing = Given(GradCheckpointing) || start.ActivationCheckpointing,
            GpusPerNode = Given(Gpus) ? r.GetValue(Gpus) : start.GpusPerNode,
            Nodes = Given(Nodes) ? r.GetValue(Nodes) : start.Nodes,
            Schedule = Pick(Schedule, start.Schedule),
            DelayedWarmupSteps = PickNullable(DelayedWarmupSteps, start.DelayedWarmupSteps),
            Executor = Pick(Executor, start.Executor),
            ActivationOffload = PickNullable(OffloadActivations, start.ActivationOffload),
            TilingFactor = PickNullable(TilingFactor, start.TilingFactor),
            PrefetchBucketSize = Given(PrefetchBucketSize) ? r.GetValue(PrefetchBucketSize) : start.PrefetchBucketSize,
            MaxLiveParameters = PickNullable(MaxLiveParameters, start.MaxLiveParameters),
            ParamPersistenceThreshold = Given(ParamPersistenceThreshold) ? r.GetValue(ParamPersistenceThreshold) : start.ParamPersistenceThreshold,
            OptimizerState = PickNullable(OptimizerState, start.OptimizerState),
            MasterWeights = PickNullable(MasterWeights, start.MasterWeights),
            HeadLoss = PickNullable(HeadLoss, start.HeadLoss),
            CudaGraphs = Given(CudaGraphs) || start.CudaGraphs,
        };
        if (Memory.EngineHeadLoss.Problem(settings) is { } head) throw new DescriptionException(head + ".");
        if (infinityImplies && settings.UsesNvme && settings.NvmePath is null)
        {
            settings = settings with { NvmePath = DefaultOffloadFolder.Path(System.Environment.CurrentDirectory) };
            notes.Add($"--zero-stage infinity: {DefaultOffloadFolder.Describe(settings)} in {settings.NvmePath}, the default folder ({DefaultOffloadFolder.Name} in the current folder); it must be on the fast NVMe drive: give --nvme-offload-path to choose, or --no-nvme-offload-params / --no-nvme-offload-optimizer to keep a part off NVMe");
        }
        if (settings.ActivationOffload == OffloadTier.Cpu && !settings.ActivationCheckpointing)
        {
            settings = settings with { ActivationCheckpointing = true };
            notes.Add("--offload-activations cpu: activation checkpointing turned on (--grad-checkpointing), since only checkpoints go to CPU RAM");
        }
        var resolved = SettingsRules.ResolveWithNotes(settings, stageGiven: Given(ZeroStage) || file is not null);
        // buffer_size left to its default holds the model's largest swapped tensor (issue 14 item 4); a typed or file value is checked by the plan.
        var sized = Memory.SwapBufferRule.SizeDefault(model, resolved.Settings, given: Given(BufferSize) || file is not null);
        // After what the flags implied (--offload-activations cpu turns checkpointing on, a stage's offload defaults).
        if (CudaGraphRule.Problem(sized.Settings) is { } graphs) throw new DescriptionException(graphs + ".");
        return resolved with { Settings = sized.Settings.Validated(model, file), Notes = [.. notes, .. resolved.Notes, .. sized.Notes] };
    }

    /// <summary>
    /// The sequence length when neither --seq-len nor a settings file gives one: 1024, but never above the model's
    /// max_seq_len (tiny-gpt's 128), so a default never makes a run fail. An explicit value is kept, and checked.
    /// </summary>
    public static int DefaultSeqLen(ModelSpec? model) => model is null ? Defaults.SeqLen : Math.Min(Defaults.SeqLen, Math.Max(1, model.MaxSeqLen));

    /// <summary>Pairs of flags that say opposite things: an error naming both, rather than one silently winning.</summary>
    private void RefuseConflicts(ParseResult r, Func<Option, bool> given)
    {
        var conflicts = new List<string>();
        void Both(Option a, Option b, string why)
        {
            if (given(a) && given(b)) conflicts.Add($"{a.Name} and {b.Name} {why}; give one of them");
        }
        void Tier(Option<OffloadTier?> tier, Option<bool> nvme, Option<bool> noNvme)
        {
            Both(nvme, noNvme, "contradict each other");
            if (!given(tier) || r.GetValue(tier) is not { } t) return;
            string name = t.ToString().ToLowerInvariant();
            if (t != OffloadTier.Nvme && given(nvme) && r.GetValue(nvme)) conflicts.Add($"{tier.Name} {name} and {nvme.Name} contradict each other; give one of them");
            if (t == OffloadTier.Nvme && given(noNvme) && r.GetValue(noNvme)) conflicts.Add($"{tier.Name} {name} and {noNvme.Name} contradict each other; give one of them");
        }
        Tier(OffloadParams, NvmeParams, NoNvmeParams);
        Tier(OffloadOptimizer, NvmeOptimizer, NoNvmeOptimizer);
        if (given(NvmeGradients) && r.GetValue(NvmeGradients) && given(OffloadGradients) && r.GetValue(OffloadGradients) is { } g && g != OffloadTier.Nvme)
            conflicts.Add($"{OffloadGradients.Name} {g.ToString().ToLowerInvariant()} and {NvmeGradients.Name} contradict each other; give one of them");
        Both(PinMemory, NoPinMemory, "contradict each other");
        if (conflicts.Count > 0)
            throw new DescriptionException("Conflicting flags:" + System.Environment.NewLine + "  - " + string.Join(System.Environment.NewLine + "  - ", conflicts));
    }

    /// <summary>
    /// Parses an enum option by name only (case ignored). System.CommandLine's own parser goes through
    /// <see cref="Enum.TryParse{TEnum}(string, bool, out TEnum)"/>, which takes "7" (or "-1", or "cpu,nvme") and
    /// yields a value no member has; this refuses them, listing the names.
    /// </summary>
    public static TEnum ParseEnum<TEnum>(ArgumentResult result) where TEnum : struct, Enum
    {
        string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
        foreach (string name in Enum.GetNames<TEnum>())
            if (string.Equals(name, text.Trim(), StringComparison.OrdinalIgnoreCase)) return Enum.Parse<TEnum>(name);
        result.AddError($"'{text}' is not a valid value for {OptionName(result)}; use one of {AllowedNames<TEnum>()}.");
        return default;
    }

    /// <summary><see cref="ParseEnum{TEnum}"/> for an option whose absence means "not set".</summary>
    public static TEnum? ParseNullableEnum<TEnum>(ArgumentResult result) where TEnum : struct, Enum => ParseEnum<TEnum>(result);

    /// <summary>The names an enum option takes, as the CLI spells them.</summary>
    public static string AllowedNames<TEnum>() where TEnum : struct, Enum =>
        string.Join(", ", Enum.GetNames<TEnum>().Select(n => n.ToLowerInvariant()));

    private static string OptionName(ArgumentResult result) => result.Parent is OptionResult o ? o.Option.Name : "the option";

    /// <summary>An explicit tier wins; then --nvme-… / --no-nvme-…; then a given NVMe path means NVMe.</summary>
    private static OffloadTier Tier(OffloadTier? explicitTier, bool nvme, bool noNvme, bool pathGiven) =>
        explicitTier ?? (noNvme ? OffloadTier.None : nvme || pathGiven ? OffloadTier.Nvme : OffloadTier.None);

    private static Optim.OptimizerStateFormat? ParseOptimizerState(ArgumentResult result)
    {
        string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
        if (Optim.OptimizerStateFormats.Parse(text) is { } format) return format;
        result.AddError($"'{text}' is not a valid value for --optimizer-state; use fp32 or 8bit.");
        return null;
    }

    private static Bytes? ParseBytes(ArgumentResult result)
    {
        string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
        if (Bytes.TryParse(text, out var bytes)) return bytes;
        result.AddError($"'{text}' is not a size for {OptionName(result)}; write bytes (1048576) or with a unit (1M, 512K, 1MiB, 60G), not negative.");
        return null;
    }
}

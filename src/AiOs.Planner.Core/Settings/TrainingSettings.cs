using System.Text.Json.Serialization;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Units;

namespace AiOs.Planner.Settings;

/// <summary>How model states are partitioned across GPUs (DeepSpeed ZeRO stages).</summary>
public enum ZeroStage
{
    /// <summary>No ZeRO: plain PyTorch data parallelism; with bf16/fp16, automatic mixed precision (fp32 weights, autocast).</summary>
    None,
    /// <summary>Optimizer states partitioned.</summary>
    Zero1,
    /// <summary>Optimizer states and gradients partitioned.</summary>
    Zero2,
    /// <summary>Parameters, gradients and optimizer states partitioned.</summary>
    Zero3,
    /// <summary>ZeRO-3 with offload to CPU RAM and NVMe (ZeRO-Infinity). DeepSpeed's config says stage 3.</summary>
    Infinity,
}

/// <summary>Where an offloaded item lives.</summary>
public enum OffloadTier
{
    /// <summary>On the GPU (not offloaded).</summary>
    None,
    Cpu,
    Nvme,
}

/// <summary>Training precision: fp32, or mixed precision with bf16/fp16 compute and fp32 master weights.</summary>
public enum Precision
{
    Fp32,
    Bf16,
    Fp16,
}

/// <summary>Order of backward and optimizer work.</summary>
public enum StepSchedule
{
    /// <summary>DeepSpeed's: the optimizer runs after the whole backward pass.</summary>
    [JsonStringEnumMemberName("deepspeed")]
    DeepSpeed,
    /// <summary>Each layer's parameters are updated while backward continues on earlier layers (LoHan/Fuyou-style).</summary>
    Overlapped,
    /// <summary>
    /// ZeRO-Offload's one-step delayed parameter update (DPU): the CPU optimizer of step i runs while the device computes
    /// step i+1, whose gradient is therefore taken at θ_{i−1} and applied to θ_i; the first <see cref="TrainingSettings.DelayedWarmupSteps"/>
    /// steps are serial (warm-up).
    /// </summary>
    Delayed,
}

/// <summary>
/// Which head and loss the bundled engine runs (<c>--head-loss</c>): the unfused head (the whole micro-batch's logits at
/// once; the faster where memory allows: gpt2 mb 8 on an H100, 36.3 against 45.1 ms a step) or the fused, chunked one
/// (a chunk of logits at a time: fewer bytes at the loss). <see cref="Auto"/> is resolved once, in Core, by
/// <c>EngineHeadLoss.Resolve</c>: unfused where the device plan with it fits the device, else the fused head where it
/// lowers the bytes.
/// </summary>
public enum HeadLoss
{
    /// <summary>Unfused when the device plan with the unfused head fits the device; else fused where that lowers the bytes at the loss.</summary>
    Auto,
    /// <summary>The fused, chunked head and loss (the engine's <c>ChunkedHeadLoss</c>).</summary>
    Fused,
    /// <summary>The unfused head: the micro-batch's logits, upcast, <c>cross_entropy</c>.</summary>
    Unfused,
}

/// <summary>
/// Which training program a prediction describes: the same settings run differently under the bundled engine
/// and under DeepSpeed (kernels, what stays on the device, host buffers), so the simulator prices one of them.
/// </summary>
public enum ExecutorKind
{
    /// <summary>The bundled TorchSharp engine (<c>aios train</c>): its measured kernels, device slots and host buffers.</summary>
    [JsonStringEnumMemberName("aios")]
    Aios,
    /// <summary>DeepSpeed with PyTorch eager, for users who run the emitted DeepSpeed config.</summary>
    [JsonStringEnumMemberName("deepspeed")]
    DeepSpeed,
}

/// <summary>Writes an executor as its CLI name (<c>aios</c>, <c>deepspeed</c>); a read error lists both.</summary>
public sealed class ExecutorJsonConverter : JsonConverter<ExecutorKind>
{
    /// <summary>The name <paramref name="executor"/> has on the command line and in settings files.</summary>
    public static string Name(ExecutorKind executor) => executor.ToString().ToLowerInvariant();

    public override ExecutorKind Read(ref System.Text.Json.Utf8JsonReader reader, Type typeToConvert, System.Text.Json.JsonSerializerOptions options)
    {
        string? text = reader.TokenType == System.Text.Json.JsonTokenType.String ? reader.GetString() : null;
        foreach (var executor in Enum.GetValues<ExecutorKind>())
            if (string.Equals(Name(executor), text, StringComparison.OrdinalIgnoreCase)) return executor;
        throw new System.Text.Json.JsonException($"{(text is null ? "expected a string" : $"'{text}' is not an executor")}: use one of {string.Join(", ", Enum.GetValues<ExecutorKind>().Select(Name))}");
    }

    public override void Write(System.Text.Json.Utf8JsonWriter writer, ExecutorKind value, System.Text.Json.JsonSerializerOptions options) =>
        writer.WriteStringValue(Name(value));
}

/// <summary>
/// Asynchronous-I/O settings with DeepSpeed's meanings (the top-level <c>aio</c> section):
/// <see cref="BlockSize"/> bytes per request, <see cref="QueueDepth"/> requests in flight per thread,
/// <see cref="IntraOpParallelism"/> threads that each take a slice of one read or write.
/// </summary>
public sealed record AioSettings
{
    public Bytes BlockSize { get; init; } = Bytes.FromMiB(1);
    public int QueueDepth { get; init; } = 8;
    public int IntraOpParallelism { get; init; } = 1;
    public bool SingleSubmit { get; init; }
    public bool OverlapEvents { get; init; } = true;

    /// <summary>Bytes in flight on the drive at once: block size × queue depth × threads.</summary>
    [JsonIgnore]
    public Bytes InFlight => BlockSize * ((long)QueueDepth * IntraOpParallelism);
}

/// <summary>
/// Every setting of a training run that changes memory or time. Defaults are DeepSpeed's documented
/// defaults where DeepSpeed has the setting. Sizes named <c>…Size</c> that DeepSpeed counts in elements
/// (<c>buffer_size</c>, <c>max_in_cpu</c>, <c>sub_group_size</c>) are elements here too.
/// </summary>
public sealed record TrainingSettings
{
    // ChoiceJsonConverter writes what the description-wide converter writes, and its read error lists the allowed names.
    [JsonConverter(typeof(ChoiceJsonConverter<ZeroStage>))]
    public ZeroStage ZeroStage { get; init; } = ZeroStage.None;
    [JsonConverter(typeof(ChoiceJsonConverter<OffloadTier>))]
    public OffloadTier ParamOffload { get; init; } = OffloadTier.None;
    [JsonConverter(typeof(ChoiceJsonConverter<OffloadTier>))]
    public OffloadTier OptimizerOffload { get; init; } = OffloadTier.None;
    /// <summary>Where fp32 gradient partitions live; null follows the optimizer (DeepSpeed's behaviour).</summary>
    [JsonConverter(typeof(ChoiceJsonConverter<OffloadTier>))]
    public OffloadTier? GradientOffload { get; init; }
    /// <summary>Folder for NVMe swap files (DeepSpeed <c>nvme_path</c>).</summary>
    public string? NvmePath { get; init; }
    /// <summary>Page-lock offloaded CPU tensors (DeepSpeed <c>pin_memory</c>); swap buffers for NVMe are always pinned.</summary>
    public bool PinMemory { get; init; } = true;

    /// <summary><c>offload_param.buffer_count</c>: parameter swap buffers per GPU process.</summary>
    public int BufferCount { get; init; } = 5;
    /// <summary><c>offload_param.buffer_size</c>, elements per parameter swap buffer.</summary>
    public long BufferSize { get; init; } = 100_000_000;
    /// <summary><c>offload_param.max_in_cpu</c>, parameter elements kept in CPU RAM when parameters go to NVMe.</summary>
    public long MaxInCpu { get; init; } = 1_000_000_000;
    /// <summary><c>offload_optimizer.buffer_count</c>: optimizer swap buffers per GPU process.</summary>
    public int OptimizerBufferCount { get; init; } = 4;
    /// <summary><c>offload_optimizer.pipeline_read</c>: read the next sub-group while updating this one.</summary>
    public bool PipelineRead { get; init; }
    /// <summary><c>offload_optimizer.pipeline_write</c>: write a sub-group back while updating the next.</summary>
    public bool PipelineWrite { get; init; }
    /// <summary><c>sub_group_size</c>, elements of optimizer state updated (and swapped) at a time.</summary>
    public long SubGroupSize { get; init; } = 1_000_000_000;
    /// <summary>
    /// With the optimizer on NVMe: host RAM (per process) for optimizer sub-groups kept out of NVMe, the rest swapped
    /// (<see cref="OptimizerPlacement"/> decides which); null or zero keeps every sub-group on NVMe. DeepSpeed has no such setting.
    /// </summary>
    public Bytes? OptimizerRamBudget { get; init; }
    /// <summary>Layers whose parameters are fetched ahead of the one computing.</summary>
    public int PrefetchDepth { get; init; } = 1;
    public AioSettings Aio { get; init; } = new();

    public int MicroBatch { get; init; } = 1;
    public int SeqLen { get; init; } = 1024;
    public int GradAccumulation { get; init; } = 1;
    [JsonConverter(typeof(ChoiceJsonConverter<Precision>))]
    public Precision Precision { get; init; } = Precision.Bf16;
    public bool ActivationCheckpointing { get; init; }
    /// <summary>GPUs used per node; null uses every GPU of the profile.</summary>
    public int? GpusPerNode { get; init; }
    /// <summary>Nodes used; null uses the profile's count.</summary>
    public int? Nodes { get; init; }
    public StepSchedule Schedule { get; init; } = StepSchedule.DeepSpeed;
    /// <summary>
    /// Delayed schedule: steps 1..N update serially before the delayed update starts (ZeRO-Offload's warm-up, while the
    /// early gradients change fast); at least 1, as the first step has no earlier update to overlap. Other schedules ignore it.
    /// </summary>
    public int DelayedWarmupSteps { get; init; } = 1;
    /// <summary>Which program the prediction prices: the bundled engine (the default) or DeepSpeed with PyTorch.</summary>
    [JsonConverter(typeof(ExecutorJsonConverter))]
    public ExecutorKind Executor { get; init; } = ExecutorKind.Aios;

    /// <summary>Bytes per parameter in the training precision (the working copy on the GPU).</summary>
    [JsonIgnore]
    public int ParamBytes => Precision == Precision.Fp32 ? 4 : 2;

    [JsonIgnore]
    public bool IsMixedPrecision => Precision != Precision.Fp32;

    /// <summary>True for stages that partition parameters (ZeRO-3 and ZeRO-Infinity).</summary>
    [JsonIgnore]
    public bool PartitionsParameters => ZeroStage is ZeroStage.Zero3 or ZeroStage.Infinity;

    /// <summary>The tier gradients actually use.</summary>
    [JsonIgnore]
    public OffloadTier EffectiveGradientOffload => GradientOffload ?? OptimizerOffload;

    /// <summary>
    /// Where activation checkpoints wait between forward and backward: on the device (None), or in host RAM (Cpu,
    /// DeepSpeed's <c>activation_checkpointing.cpu_checkpointing</c>: copied out after each layer's forward, back before its recompute).
    /// </summary>
    [JsonConverter(typeof(ChoiceJsonConverter<OffloadTier>))]
    public OffloadTier ActivationOffload { get; init; } = OffloadTier.None;
    /// <summary>Memory-centric tiling (ZeRO-Infinity §5.1.3): each layer's weight matrices split into this many tiles, fetched and computed one at a time; 1 = no tiling.</summary>
    public int TilingFactor { get; init; } = 1;
    /// <summary><c>stage3_prefetch_bucket_size</c>: parameter elements fetched ahead of the module computing; null: DeepSpeed's default (50M) while <see cref="PrefetchDepth"/> &gt; 0, none at depth 0.</summary>
    public long? PrefetchBucketSize { get; init; }
    /// <summary><c>stage3_max_live_parameters</c>: gathered parameter elements a GPU keeps before releasing (DeepSpeed's default 1e9).</summary>
    public long MaxLiveParameters { get; init; } = 1_000_000_000;
    /// <summary><c>stage3_param_persistence_threshold</c>: parameters with fewer elements stay gathered on every GPU; null: 10 × hidden, as the emitted config has always said.</summary>
    public long? ParamPersistenceThreshold { get; init; }
    /// <summary>
    /// Attention computed eagerly, as Megatron-LM v1.1.5 (the ZeRO-Infinity paper's code) does: the score and probability
    /// matrices (heads × seq per token) are kept for backward; false: a fused kernel (SDPA) that keeps none.
    /// </summary>
    public bool EagerAttention { get; init; }
    /// <summary>
    /// The loss as Megatron-LM v1.1.5 computes it (<c>mpu.vocab_parallel_cross_entropy</c> on an fp32 copy of the logits, worked on
    /// in place and kept as the softmax), over the vocabulary padded to a multiple of 128; false: Hugging Face's loss, which keeps
    /// the logits, an fp32 upcast, a shifted copy and the log-softmax. Counted by the deepspeed executor's plan; the aios engine has its own loss.
    /// </summary>
    public bool VocabParallelCrossEntropy { get; init; }
    /// <summary>How the CPU optimizer stores Adam's moments in RAM, on NVMe and in checkpoints: fp32, or block-wise 8-bit (needs the optimizer offloaded).</summary>
    [JsonConverter(typeof(OptimizerStateJsonConverter))]
    public Optim.OptimizerStateFormat OptimizerState { get; init; } = Optim.OptimizerStateFormat.Fp32;
    /// <summary>
    /// How the CPU optimizer stores the fp32 master weights: whole (fp32), or split into the bf16 parameter and a 16-bit
    /// remainder in the optimizer state (split: 2 bytes per parameter fewer in the state on NVMe; aios engine only).
    /// </summary>
    [JsonConverter(typeof(ChoiceJsonConverter<Optim.MasterWeights>))]
    public Optim.MasterWeights MasterWeights { get; init; } = Optim.MasterWeights.Fp32;

    /// <summary>The engine's head and loss: auto (resolved from the device plan, <c>EngineHeadLoss.Resolve</c>), fused or unfused. DeepSpeed's program ignores it.</summary>
    [JsonConverter(typeof(ChoiceJsonConverter<HeadLoss>))]
    public HeadLoss HeadLoss { get; init; } = HeadLoss.Auto;

    /// <summary>
    /// The aios engine with nothing offloaded on a GPU: each decoder layer's forward and backward captured as CUDA graphs at the
    /// warm-up and replayed every step, so the host no longer dispatches a layer's kernels one by one (launch-bound runs: small
    /// micro-batches, small models). Not with activation checkpointing; <see cref="CudaGraphRule"/> says what it needs.
    /// </summary>
    public bool CudaGraphs { get; init; }

    [JsonIgnore]
    public bool UsesNvme => ParamOffload == OffloadTier.Nvme || OptimizerOffload == OffloadTier.Nvme || EffectiveGradientOffload == OffloadTier.Nvme;
}

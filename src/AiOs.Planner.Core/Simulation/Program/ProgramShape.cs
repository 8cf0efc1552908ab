namespace AiOs.Planner.Simulation.Program;

/// <summary>Where the optimizer's sub-groups draw their bounds.</summary>
public enum SubGroupBounds
{
    /// <summary>Across the flat model partition, as DeepSpeed's ZeRO-3 optimizer does (a sub-group may span units).</summary>
    FlatModel,
    /// <summary>Within each unit (a sub-group never spans two units), so one unit can be updated on its own.</summary>
    WithinUnit,
}

/// <summary>When gradients offloaded to NVMe are written under gradient accumulation.</summary>
public enum NvmeGradientWrites
{
    /// <summary>Accumulated in host memory and written once, after the last micro-batch.</summary>
    AfterLastMicroBatch,
    /// <summary>Written at every micro-batch; from the second on, read, added to and written back (host memory holds one unit's gradient).</summary>
    ReadModifyWriteEachMicroBatch,
}

/// <summary>What one staging buffer (<c>buffer_count</c> of <c>buffer_size</c> elements) holds while parameters come from NVMe.</summary>
public enum StagingGranularity
{
    /// <summary>One weight tensor per buffer (DeepSpeed's swapper): a layer takes one buffer per weight matrix.</summary>
    PerTensor,
    /// <summary>A unit staged whole: it takes ceil(unit elements / buffer_size) buffers.</summary>
    WholeUnit,
}

/// <summary>What one parameter fetch gathers on the device at a time.</summary>
public enum FetchGranularity
{
    /// <summary>Module by module (DeepSpeed's ZeRO-3): the device holds the module computing, the prefetch bucket and a few modules' gradients, never a whole block.</summary>
    PerModule,
    /// <summary>A unit (a transformer block, the outer block) gathered whole into a device slot: the bundled engine's slots.</summary>
    WholeUnit,
}

/// <summary>
/// The choices on which a DeepSpeed run and the bundled engine perform a step differently. The scheduler
/// reads them to build the program; the engine executes the program built with <see cref="Engine"/>, and the
/// simulator prices whichever it is given, so a setting means one thing on both sides.
/// </summary>
public sealed record ProgramShape
{
    /// <summary>Embedding, final norm and head form one outer unit, fetched once per micro-batch and kept until its backward ends; false: separate embedding and head units.</summary>
    public required bool OuterBlock { get; init; }
    /// <summary>Where sub-groups draw their bounds.</summary>
    public required SubGroupBounds SubGroups { get; init; }
    /// <summary>When NVMe gradients are written under accumulation.</summary>
    public required NvmeGradientWrites GradientWrites { get; init; }
    /// <summary>What a staging buffer holds.</summary>
    public required StagingGranularity Staging { get; init; }
    /// <summary>Every layer is recomputed in backward whatever <c>activation_checkpointing</c> says (the engine keeps only layer inputs).</summary>
    public required bool AlwaysRecompute { get; init; }
    /// <summary>The optimizer always runs on the CPU and gradients always leave the device per unit (the engine's CPU Adam), even with nothing offloaded.</summary>
    public required bool CpuOptimizer { get; init; }
    /// <summary>Offloaded parameters are copied into a device slot (and gradients out of it) even when the device is the CPU; false: a CPU-only run works on them in place.</summary>
    public required bool SlotCopiesOnCpu { get; init; }
    /// <summary>What a parameter fetch gathers at a time; the simulator still orders work per unit, but holds only this much on the device.</summary>
    public FetchGranularity Fetch { get; init; } = FetchGranularity.PerModule;
    /// <summary>Bytes of optimizer state per parameter swapped with NVMe; null: the memory model's figure (8 in fp32, 12 in mixed precision).</summary>
    public int? OptimizerStateBytes { get; init; }
    /// <summary>
    /// The first micro-batch's gradients bound for CPU RAM are widened to fp32 on the device and cross PCIe as 4 bytes
    /// per element, straight into the fp32 accumulators (no host pass over them); later micro-batches, and gradients
    /// bound for NVMe, cross in the working precision. Applies on a GPU (on a CPU device nothing crosses a link). False: every download is in the working precision.
    /// </summary>
    public bool WideFirstGradientDownload { get; init; }
    /// <summary>
    /// On a GPU, a micro-batch after the first brings its gradients bound for CPU RAM into the fp32 sums through the host:
    /// the download packs them in the working precision and queues their copy into one of
    /// <see cref="GradientStagingBuffers"/> pinned staging buffers, and an <see cref="OpKind.GradAccumulate"/> on its own
    /// thread (<see cref="ResourceKind.HostSums"/>) waits for the copy and adds them into the sum in parallel chunks over the
    /// CPU's cores (the engine's <c>CpuGradientStore</c>). The device slot is free when the download ends, before the add, and
    /// the downloading thread goes on to the next unit while the add runs. With several processes (no copy streams) the
    /// download copies, waits and adds itself. False: the download is the copy alone.
    /// </summary>
    public bool HostAddsLaterGradients { get; init; }
    /// <summary>
    /// With <see cref="HostAddsLaterGradients"/>, the pinned buffers (each the largest unit's gradient in the working precision)
    /// later micro-batches' downloads take in turn: a download waits for the add that read its buffer last, so the adds may
    /// fall this many units behind the downloads. One put each download behind the previous add, on the downloading thread
    /// (H100 VM, 2026-12-06 session 19: a gpt2-medium layer's add took about as long as its GPU work, ~2.9 ms against ~2.45,
    /// docs/validation/gpu-2026-12-06-session19.md).
    /// </summary>
    public int GradientStagingBuffers
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "A program needs at least one gradient staging buffer.");
    } = 1;
    /// <summary>
    /// With parameters on NVMe, the units <see cref="Settings.ParameterPlacement"/> picks under <c>max_in_cpu</c> keep their
    /// parameters in CPU RAM: uploaded with no NVMe read, written back to RAM (the engine). False: every unit on NVMe
    /// (DeepSpeed's swapper is reported not to act on <c>max_in_cpu</c>, deepspeedai/DeepSpeed issue 4221).
    /// </summary>
    public bool HonoursMaxInCpu { get; init; }
    /// <summary>
    /// With <c>cpu_checkpointing</c>, how checkpoint copies are ordered. True (the engine): on the copy engines, a layer's
    /// copy out overlaps the next layer's forward (a forward waits for the copy out of the checkpoint two layers back, so
    /// the device holds at most two), and each copy back runs ahead of its recompute as soon as the backward two layers
    /// up has freed its place (one layer ahead at least). False (DeepSpeed): <c>.cpu()</c> on the compute stream, so the
    /// next layer waits for the copy out, and the copy back on entry to the recompute.
    /// </summary>
    public bool PrefetchesCheckpoints { get; init; }
    /// <summary>
    /// With split master weights and parameters on NVMe, a sub-group's optimizer read takes the master's high halves from the
    /// staging slot its unit's last parameter read of the step left them in, when no later read has reused that slot yet
    /// (<see cref="Operation.HighHalvesSlot"/>): under the overlapped schedule every unit whose slot outlives its update
    /// (staging slots at least the window of layer slots), under the DeepSpeed schedule the units read last (as many layers
    /// as staging slots, and the outer block). The staging buffers are there anyway, so this costs no memory; the next read
    /// into such a slot waits for the optimizer reads that use it. False: the high halves are read from the file again.
    /// </summary>
    public bool StagedHighHalves { get; init; }

    /// <summary>DeepSpeed ZeRO-3 / ZeRO-Infinity with PyTorch: what the simulator has always predicted.</summary>
    public static ProgramShape DeepSpeed { get; } = new()
    {
        OuterBlock = false,
        SubGroups = SubGroupBounds.FlatModel,
        GradientWrites = NvmeGradientWrites.AfterLastMicroBatch,
        Staging = StagingGranularity.PerTensor,
        AlwaysRecompute = false,
        CpuOptimizer = false,
        SlotCopiesOnCpu = false,
    };

    /// <summary>
    /// The bundled layer-by-layer engine: an outer block, sub-groups within units, NVMe gradients read, added to
    /// and written at every micro-batch (so host memory holds one unit's gradient, not the model's), units staged
    /// whole, every layer recomputed, CPU Adam over [master | m | v] (12 bytes per parameter in any precision).
    /// </summary>
    public static ProgramShape Engine { get; } = new()
    {
        OuterBlock = true,
        SubGroups = SubGroupBounds.WithinUnit,
        GradientWrites = NvmeGradientWrites.ReadModifyWriteEachMicroBatch,
        Staging = StagingGranularity.WholeUnit,
        AlwaysRecompute = true,
        CpuOptimizer = true,
        SlotCopiesOnCpu = true,
        OptimizerStateBytes = 12,
        WideFirstGradientDownload = true,
        HostAddsLaterGradients = true,
        GradientStagingBuffers = 2,
        Fetch = FetchGranularity.WholeUnit,
        HonoursMaxInCpu = true,
        PrefetchesCheckpoints = true,
        StagedHighHalves = true,
    };

    /// <summary>
    /// The shape of the program the settings' executor runs: the bundled engine's when <c>aios</c> offloads (its
    /// layer-by-layer trainer, on one GPU or as each rank of several on one host); DeepSpeed's otherwise — the engine's
    /// resident trainer walks the units in DeepSpeed's order.
    /// </summary>
    public static ProgramShape For(Settings.TrainingSettings settings, Hardware.HardwareProfile hardware)
    {
        ArgumentNullException.ThrowIfNull(settings);
        bool offloads = settings.ParamOffload != Settings.OffloadTier.None || settings.OptimizerOffload != Settings.OffloadTier.None
            || settings.EffectiveGradientOffload != Settings.OffloadTier.None;
        return settings.Executor == Settings.ExecutorKind.Aios && offloads ? Engine : DeepSpeed;
    }

    /// <summary>
    /// The ZeRO stage the engine runs on several ranks: parameters that are offloaded are partitioned (stage 3, as DeepSpeed
    /// requires for parameter offload; infinity kept), parameters kept on the device are whole on every rank (stage 2).
    /// </summary>
    public static Settings.ZeroStage EngineStage(Settings.TrainingSettings settings) =>
        settings.ParamOffload == Settings.OffloadTier.None ? Settings.ZeroStage.Zero2
        : settings.ZeroStage is Settings.ZeroStage.Zero3 or Settings.ZeroStage.Infinity ? settings.ZeroStage : Settings.ZeroStage.Zero3;

    /// <summary>The settings the engine's program is built from: on several ranks, with the stage the engine runs (<see cref="EngineStage"/>).</summary>
    public static Settings.TrainingSettings EngineSettings(Settings.TrainingSettings settings, Hardware.HardwareProfile hardware) =>
        Topology.Of(settings, hardware).Ranks > 1 ? settings with { ZeroStage = EngineStage(settings) } : settings;
}

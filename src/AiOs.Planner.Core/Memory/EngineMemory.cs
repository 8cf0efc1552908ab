using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Memory;

/// <summary>One item of the engine's host RAM, whether it is page-locked, and the setting that lowers it.</summary>
/// <param name="Item">What it holds and how much.</param>
/// <param name="Pinned">Page-locked for the GPU's copy engines.</param>
/// <param name="Remedy">The flag that lowers it.</param>
public sealed record EngineHostItem(MemoryItem Item, bool Pinned, string Remedy);

/// <summary>
/// Peak memory of the bundled engine (<c>aios train</c>, <see cref="ExecutorKind.Aios"/>), tier by tier, from what
/// its code allocates (Engine/Execution: DeviceTrainer, ParameterSwapper, PrefetchWindow, OptimizerStates,
/// GradientStore, LayerwiseTrainer). The engine is one process per GPU; units are the decoder layers and one
/// outer block (embeddings, final norm, head). Device figures are what the CUDA driver reports (the engine's
/// <c>DeviceMemory</c>: context plus everything the caching allocator reserved), so a fitted allocator slack
/// sits on top of the tensors. See docs/memory-model.md.
/// </summary>
public static class EngineMemory
{
    /// <summary>
    /// Device memory beyond the tensors that grows with none of them: the CUDA context, libtorch's and NVRTC's kernels,
    /// cuBLAS workspaces. Fitted with <see cref="AllocatorSlack"/> to two resident engine runs on the H200 (2026-12-05,
    /// docs/simulator.md: gpt2 mb 4, 7.45 GiB; gpt2-xl mb 8, 51.76 GiB) and checked on eleven others of that day
    /// (resident and offloaded, gpt2-medium to gpt2-xl: within 6%; the Llama shapes are under-planned, see the doc).
    /// </summary>
    public static readonly Bytes CudaContext = Bytes.FromMiB(2314);

    /// <summary>
    /// What the caching allocator reserves beyond the tensors alive at the peak (block rounding, freed blocks it keeps,
    /// fragmentation), as a share of the allocated peak. Fitted with <see cref="CudaContext"/> (see there).
    /// </summary>
    public const double AllocatorSlack = 0.027;

    /// <summary>
    /// Host RAM of the .NET runtime and libtorch with CUDA loaded (libraries, CUDA host state), per process: the median
    /// peak RSS of six resident engine runs on the H200 (2026-12-05, gpt2 to gpt2-xl: 1.7–4.0 GiB; a resident run keeps
    /// nothing else on the host). A regression guard, not a validation.
    /// </summary>
    public static readonly Bytes GpuRuntimeBaseline = Bytes.FromGiB(3.0);

    /// <summary>Host RAM of the .NET runtime and CPU-only libtorch, per process (estimate).</summary>
    public static readonly Bytes CpuRuntimeBaseline = Bytes.FromMiB(512);

    /// <summary>
    /// Host bytes per parameter the engine holds beyond every buffer it names, where per-parameter state is in RAM and the
    /// compute runs on the CPU (managed and C heap; a GPU run plans none, see <see cref="Plan"/>'s host items). Fitted to one CPU run of today's engine: gpt2, parameters and optimizer in RAM, seq 128, mb 1, on the
    /// 2-core CI VM, peak RSS 3.18 GB (GNU time, 2026-12-05); a regression guard, not a validation.
    /// </summary>
    public const double UnattributedHostBytesPerParameter = 0.9;

    /// <summary>The engine's peak per tier for <paramref name="s"/>; <paramref name="gpuMemoryLimit"/> is train's --gpu-memory-limit (the ballast takes the rest of the device).</summary>
    public static MemoryPlan Plan(ModelSpec m, HardwareProfile hw, TrainingSettings s, Bytes? gpuMemoryLimit = null)
    {
        ArgumentNullException.ThrowIfNull(m);
        ArgumentNullException.ThrowIfNull(hw);
        ArgumentNullException.ThrowIfNull(s);
        int processes = Math.Max(1, s.GpusPerNode ?? hw.GpusPerNode);
        s = PerProcess(hw, s);
        bool gpu = hw.HasGpu;
        // The head the engine runs (EngineHeadLoss.Choose): the unfused one where it fits this device, its bytes priced here.
        bool fused = EngineHeadLoss.Choose(m, hw, s, EngineHeadLoss.DeviceBudget(hw, gpuMemoryLimit)) == HeadLoss.Fused;
        var device = DeviceItems(m, s, fused, out string phase);
        var host = HostNeed(m, s, gpu);
        var pinned = host.Where(i => i.Pinned).Select(i => i.Item with { Bytes = i.Item.Bytes * processes }).ToList();
        var pageable = host.Where(i => !i.Pinned).Select(i => i.Item with { Bytes = i.Item.Bytes * processes }).ToList();
        List<MemoryItem> gpuItems = [];
        Bytes reserve = Bytes.Zero;
        if (gpu)
        {
            gpuItems.AddRange(device);
            reserve = CudaContext + Sum(device) * AllocatorSlack;
            gpuItems.Add(new MemoryItem("framework reserve", reserve, "CUDA context and caching-allocator slack (fitted, see docs/memory-model.md)"));
        }

        Bytes ram = hw.Cpu.Ram;
        Bytes pinnedSum = Sum(pinned);
        Bytes left = ram - pinnedSum;
        Bytes capacity = gpu ? hw.Gpu!.Memory : Bytes.Zero;
        if (gpu && gpuMemoryLimit is { } limit && limit < capacity) capacity = limit;
        var states = StateBytes(m, s);
        return new MemoryPlan
        {
            Gpu = new TierUse(MemoryTier.Gpu, gpuItems, capacity),
            GpuPeakPhase = phase,
            GpuReserve = reserve,
            CpuPinned = new TierUse(MemoryTier.CpuPinned, pinned, ram),
            CpuPageable = new TierUse(MemoryTier.CpuPageable, pageable, left.Value > 0 ? left : Bytes.Zero),
            Nvme = new TierUse(MemoryTier.Nvme, NvmeItems(m, s), hw.Drives.Aggregate(Bytes.Zero, (sum, d) => sum + d.Capacity)),
            ModelStatesGpu = states.Gpu,
            // Streaming ranks split the states (each holds its shard); resident ones hold them whole.
            ModelStatesCpu = IsResident(s) ? states.Cpu * processes : states.Cpu,
        };
    }

    /// <summary>
    /// The GPU bytes of one engine process at its peak with the fused head (<paramref name="fused"/>) or the unfused one:
    /// the device items, the CUDA context and the allocator's slack, the figure <see cref="Plan"/>'s GPU tier holds and the
    /// planner's feasibility check compares with the card. <see cref="EngineHeadLoss.Choose"/> takes it with each head.
    /// </summary>
    public static Bytes DevicePeak(ModelSpec m, HardwareProfile hw, TrainingSettings s, bool fused)
    {
        ArgumentNullException.ThrowIfNull(m);
        ArgumentNullException.ThrowIfNull(hw);
        ArgumentNullException.ThrowIfNull(s);
        Bytes items = Sum(DeviceItems(m, PerProcess(hw, s), fused, out _));
        return items + CudaContext + items * AllocatorSlack;
    }

    /// <summary>One process's settings: the per-process figures count each rank's shards (max_in_cpu applies to a rank's shard elements).</summary>
    private static TrainingSettings PerProcess(HardwareProfile hw, TrainingSettings s)
    {
        int processes = Math.Max(1, s.GpusPerNode ?? hw.GpusPerNode);
        if (s.GpusPerNode is null && (processes > 1 || hw.HasGpu)) s = s with { GpusPerNode = processes };
        return s;
    }

    /// <summary>
    /// Whether the engine's gradients in CPU RAM are kept in bf16 (2 bytes per parameter) rather than as fp32 sums: bf16
    /// training with one micro-batch per step, where the device's bf16 gradients are never summed, so keeping them as made
    /// is exact (bf16 → fp32 widening is lossless: Σg², clipping and Adam see the same fp32 values). The engine's
    /// CpuGradientStore, its host need, the device's downloads in flight and the step program's download bytes all follow it.
    /// DeepSpeed keeps fp32 gradient partitions whatever the precision; its plan does not use this.
    /// </summary>
    public static bool HostGradientsInBf16(TrainingSettings s)
    {
        ArgumentNullException.ThrowIfNull(s);
        return s.Precision == Precision.Bf16 && s.GradAccumulation == 1;
    }

    /// <summary>Bytes per parameter of the engine's gradients in CPU RAM (and of each download in flight to them).</summary>
    private static int HostGradientBytes(TrainingSettings s) => HostGradientsInBf16(s) ? 2 : 4;

    /// <summary>
    /// Whether the engine keeps activation checkpoints in CPU RAM (<c>--offload-activations cpu</c> with checkpointing): its
    /// layer-by-layer trainer does; the resident one refuses it (<see cref="MemoryCentricTiling.EngineRefusal"/>).
    /// </summary>
    public static bool OffloadsCheckpoints(TrainingSettings s) =>
        s.ActivationOffload == OffloadTier.Cpu && s.ActivationCheckpointing && !IsResident(s);

    /// <summary>Layer inputs the layer-by-layer trainer holds on the device with checkpoints in CPU RAM: two (the step program's bound), at most one per layer.</summary>
    public static int DeviceCheckpoints(ModelSpec m) => Math.Min(2, m.NumLayers);

    /// <summary>Whether the engine keeps everything on the device (DeviceTrainer) rather than streaming units (LayerwiseTrainer).</summary>
    public static bool IsResident(TrainingSettings s) =>
        s.ParamOffload == OffloadTier.None && s.OptimizerOffload == OffloadTier.None && s.EffectiveGradientOffload == OffloadTier.None;

    /// <summary>The "logits and loss" item's note: which head runs and why (<see cref="EngineHeadLoss.Choose"/>), and what it keeps.</summary>
    private static string LogitsNote(ModelSpec m, TrainingSettings s, long tokens, bool fused)
    {
        string why = s.HeadLoss != HeadLoss.Auto ? "head_loss " + Descriptions.Choice.NameOf(s.HeadLoss)
            : fused ? "auto: the unfused head's logits would not fit the device"
            : EngineHeadLoss.FusingSavesBytes(tokens, m.VocabSize, m.HiddenSize, s.Precision) ? "auto: the unfused head fits the device and is the faster"
            : "auto: too few tokens for the fused head's weight gradient to pay";
        return fused
            ? $"fused head and loss ({why}): logits of {Math.Min(tokens, EngineHeadLoss.ChunkTokens(m.VocabSize)):N0} tokens at a time; the normed states' gradient and the head weight's summed gradient stay"
            : $"unfused head ({why}): {(s.IsMixedPrecision ? $"{s.ParamBytes * 8}-bit logits, " : "")}fp32 logits and log-softmax at the loss";
    }

    /// <summary>How the item notes name 8-bit moments (empty for fp32).</summary>
    private static string EightBitNote(TrainingSettings s) => s.OptimizerState == OptimizerStateFormat.EightBit ? " (block-wise 8-bit)" : "";

    /// <summary>The engine's processes on this host (<c>aios train --gpus N</c>): the settings' GPUs per node, at least one.</summary>
    public static int Ranks(TrainingSettings s) => Math.Max(1, s.GpusPerNode ?? 1);

    /// <summary>Ranks that split the optimizer state: the streaming engine's ranks on this host; one when resident (replicated).</summary>
    private static int RanksOf(TrainingSettings s) => IsResident(s) ? 1 : Ranks(s);

    /// <summary>
    /// One rank's optimizer elements in RAM and on NVMe under the RAM budget: the budget applies to each rank's shard (the
    /// engine places each rank's sub-groups by it), so a rank keeps at most its shard.
    /// </summary>
    private static (long Ram, long Nvme) RankOptimizerSplit(ModelSpec m, TrainingSettings s)
    {
        var (ram, nvme) = OptimizerSplit(m, s);
        int ranks = RanksOf(s);
        if (ranks == 1) return (ram, nvme);
        long shard = Topology.ShareOf(m.LayerParameters, ranks) * m.NumLayers + Topology.ShareOf(OuterElements(m), ranks);
        long kept = Math.Min(ram, shard);
        return (kept, shard - kept);
    }


    /// <summary>Elements of the outer block: token (and learned position) embeddings, final norm, untied head.</summary>
    public static long OuterElements(ModelSpec m) => m.EmbeddingParameters + m.HeadParameters;

    /// <summary>Device slots the engine streams layers through: prefetch depth + 1, at most one per layer.</summary>
    public static int LayerSlots(ModelSpec m, TrainingSettings s) => Math.Clamp(1 + Math.Max(0, s.PrefetchDepth), 1, Math.Max(1, m.NumLayers));

    private static List<MemoryItem> DeviceItems(ModelSpec m, TrainingSettings s, bool fused, out string phase)
    {
        int pb = s.ParamBytes;
        long p = m.TotalParameters, tokens = (long)s.MicroBatch * s.SeqLen;
        var items = new List<MemoryItem>();
        Bytes layerFull = PerTokens(EngineActivations.LayerBytesPerToken(m, s), tokens);
        Bytes input = PerTokens(EngineActivations.LayerInputBytesPerToken(m, s), tokens);
        Bytes head = EngineHeadLoss.PeakBytes(m, s, tokens, fused); // the head the engine runs (EngineHeadLoss.Choose)
        if (IsResident(s))
        {
            items.Add(new MemoryItem("parameters", Bytes.OfElements(p, pb), $"{pb}-byte working copy, every unit resident"));
            items.Add(new MemoryItem("gradients", Bytes.OfElements(p, pb), "one flat buffer per unit, autograd accumulates in place"));
            // 8-bit moments (the device 8-bit AdamW): 1 byte per value and an fp32 scale per 2,048 each, instead of 4 bytes.
            items.Add(new MemoryItem("optimizer states", StateLayout.OptimizerState(s, p),
                (s.IsMixedPrecision ? "fp32 master, Adam m and v" : "Adam m and v (the fp32 parameters are the master)") + EightBitNote(s)));
            if (s.GradAccumulation > 1 && s.IsMixedPrecision)
                items.Add(new MemoryItem("gradient accumulators", Bytes.OfElements(p, 4), "fp32 sums across micro-batches"));
            // DeviceTrainer keeps every layer's graph without checkpointing, each layer's input with it (then one layer recomputed).
            Bytes stored = s.ActivationCheckpointing ? input * m.NumLayers + layerFull : layerFull * m.NumLayers;
            items.Add(new MemoryItem("activations", stored, s.ActivationCheckpointing ? "layer inputs, one layer recomputed" : "every layer's autograd graph"));
            items.Add(new MemoryItem("logits and loss", head, LogitsNote(m, s, tokens, fused)));
            phase = "end of forward (loss)";
            return items;
        }
        long layer = m.LayerParameters, outer = OuterElements(m);
        if (s.ParamOffload == OffloadTier.None)
        {
            // ParameterSwapper's device tier: every unit keeps its own module (and autograd its gradients) on the device.
            items.Add(new MemoryItem("parameters", Bytes.OfElements(p, pb) * 2, $"{pb}-byte working copy of every unit, and its gradients"));
        }
        else
        {
            int slots = LayerSlots(m, s);
            items.Add(new MemoryItem("layer slots", Bytes.OfElements(layer, pb) * (2L * slots), $"{slots} slot(s) (prefetch depth + 1): parameters and their gradients"));
            items.Add(new MemoryItem("outer block", Bytes.OfElements(outer, pb) * 2, "embeddings and head with their gradients, on the device for the whole micro-batch"));
        }
        // LayerwiseTrainer always runs forward without autograd and recomputes in backward: layer inputs stay, one layer is recomputed.
        // With checkpoints in CPU RAM it keeps two inputs on the device (one copying out or back, one in use); the step program orders it so.
        if (OffloadsCheckpoints(s))
            items.Add(new MemoryItem("activations", input * DeviceCheckpoints(m) + layerFull, $"{DeviceCheckpoints(m)} layer inputs (the rest in CPU RAM), one layer recomputed with its gradients"));
        else
            items.Add(new MemoryItem("activations", input * m.NumLayers + layerFull, "every layer's input, one layer recomputed with its gradients"));
        // With gradients in CPU RAM, each unit's first micro-batch leaves as one copy packed on the device (fp32, or bf16 when
        // the host keeps bf16: HostGradientsInBf16), up to two in flight (CpuGradientStore.MaxInFlight). They exist in backward, when the logits are gone: the peak is whichever
        // is larger. The Llama shapes on the H200 (2026-12-05), whose logits are small against their layers, were 1.2–2.4 GiB
        // above the plan without them (docs/validation/h200-engine-grid-2026-12-05.md).
        int downloadBytes = HostGradientBytes(s);
        Bytes downloads = !IsResident(s) && s.EffectiveGradientOffload != OffloadTier.Nvme ? Bytes.OfElements(layer + Math.Max(layer, outer), downloadBytes) : Bytes.Zero;
        if (downloads > head)
        {
            string packedAs = downloadBytes == 2 ? "bf16 (the host keeps bf16, exact at accumulation 1)" : "fp32";
            items.Add(new MemoryItem("gradient downloads in flight", downloads, $"two units' gradients packed in {packedAs} for their download (backward; the logits are gone)"));
            phase = "backward";
        }
        else
        {
            items.Add(new MemoryItem("logits and loss", head, LogitsNote(m, s, tokens, fused)));
            phase = "head and loss";
        }
        return items;
    }

    /// <summary>
    /// The engine's host RAM for one process, item by item: the one definition the planner's <c>aios</c> executor
    /// (<see cref="Plan"/>) and the engine's refusal check (Engine's <c>HostMemoryEstimate</c>) both use. On a CPU device the
    /// device's working set (slots, activations, loss) is host RAM too and is listed with a <c>device: </c> prefix.
    /// </summary>
    /// <param name="m">The model.</param>
    /// <param name="s">Placement, buffers, batch.</param>
    /// <param name="gpu">Whether the device is a GPU (host tensors that feed it are page-locked).</param>
    /// <remarks>
    /// With several ranks (<see cref="Ranks"/>), each streaming process holds its shard of every unit's per-parameter state
    /// (ZeRO-3 or ZeRO-2, padded to the ranks) and its own buffers; a resident process holds whole units. This is one process's need.
    /// </remarks>
    public static IReadOnlyList<EngineHostItem> HostNeed(ModelSpec m, TrainingSettings s, bool gpu)
    {
        ArgumentNullException.ThrowIfNull(m);
        ArgumentNullException.ThrowIfNull(s);
        int pb = s.ParamBytes;
        int shards = IsResident(s) ? 1 : Ranks(s);
        // Per-parameter host state is this rank's shard of each unit (ShardLayout: ⌈elements / ranks⌉).
        long layer = Topology.ShareOf(m.LayerParameters, shards), outer = Topology.ShareOf(OuterElements(m), shards), largest = Math.Max(layer, outer);
        long p = layer * m.NumLayers + outer;
        if (shards == 1) p = m.TotalParameters;
        var items = new List<EngineHostItem>();
        void Add(string name, Bytes bytes, string note, string remedy, bool pinned = false) => items.Add(new(new MemoryItem(name, bytes, note), pinned, remedy));
        // The engine maps each unit's host tensor itself at its exact size, rounded to a 4 KiB page (Engine Native/HostBuffer).
        Bytes PerUnit(int elementBytes) => Aligned(Bytes.OfElements(layer, elementBytes)) * m.NumLayers + Aligned(Bytes.OfElements(outer, elementBytes));

        if (s.ParamOffload == OffloadTier.Cpu)
        {
            Add("parameters", PerUnit(pb), $"{pb}-byte copy per unit{(gpu ? ", page-locked" : "")}", "--offload-params nvme", pinned: gpu);
            // The delayed schedule double-buffers parameters in RAM: its pending update writes θ_i into the spare copy while the passes read the other.
            if (s.Schedule == StepSchedule.Delayed)
                Add(DelayedSpareParametersItem, PerUnit(pb), $"{pb}-byte second copy per unit{(gpu ? ", page-locked" : "")}: the update of step i writes it while step i+1 reads the other; they swap at the step boundary",
                    "--schedule overlapped", pinned: gpu);
        }
        else if (s.ParamOffload == OffloadTier.Nvme)
        {
            // max_in_cpu: whole units stay in RAM (ParameterPlacement), each a host copy of this rank's shard as on the CPU tier.
            bool[] kept = ParameterPlacement.EngineUnitsInRam(m, s, Ranks(s));
            long keptLayers = kept.Take(m.NumLayers).Count(k => k);
            bool outerKept = kept[m.NumLayers];
            if (keptLayers > 0 || outerKept)
                Add(KeptParametersItem, Aligned(Bytes.OfElements(layer, pb)) * keptLayers + (outerKept ? Aligned(Bytes.OfElements(outer, pb)) : Bytes.Zero),
                    $"{pb}-byte copy of {(outerKept ? "the outer block and " : "")}{keptLayers} layer(s), max_in_cpu {s.MaxInCpu:N0} elements{(gpu ? ", page-locked" : "")}",
                    "--max-in-cpu", pinned: gpu);
            // Staging buffers only for what is still read from NVMe.
            Bytes staging = (keptLayers < m.NumLayers ? Aligned(Bytes.OfElements(layer, pb)) * Math.Max(1, s.BufferCount) : Bytes.Zero)
                + (outerKept ? Bytes.Zero : Aligned(Bytes.OfElements(outer, pb)));
            if (staging > Bytes.Zero)
                Add("parameter staging buffers", staging, (keptLayers < m.NumLayers, outerKept) switch
                {
                    (true, false) => $"buffer_count {s.BufferCount} layer buffers and one for the outer block, 4 KiB aligned",
                    (true, true) => $"buffer_count {s.BufferCount} layer buffers (the outer block is in RAM), 4 KiB aligned",
                    _ => "one for the outer block (the layers are in RAM), 4 KiB aligned",
                }, "--buffer-count");
        }
        // Once anything streams (LayerwiseTrainer), the optimizer and the gradient sums live on the host unless on NVMe.
        bool resident = IsResident(s);
        if (!resident && s.OptimizerOffload != OffloadTier.Nvme)
            Add("optimizer states", s.OptimizerState.StateBytes(p), $"fp32 master, Adam m and v{EightBitNote(s)}, managed arrays", "--offload-optimizer nvme");
        else if (s.OptimizerOffload == OffloadTier.Nvme)
        {
            var (ramElements, nvmeElements) = RankOptimizerSplit(m, s);
            if (ramElements > 0)
                Add("optimizer states", s.OptimizerState.StateBytes(ramElements), $"fp32 master, Adam m and v{EightBitNote(s)} of the sub-groups the RAM budget keeps ({s.OptimizerRamBudget})", "--optimizer-ram-budget");
            if (nvmeElements > 0)
                Add("optimizer swap buffers", Aligned(s.OptimizerState.StateBytes(Math.Min(s.SubGroupSize, largest)) + Bytes.OfElements(Math.Min(s.SubGroupSize, largest), 4)
                    - s.MasterWeights.SwappedStateSaving(Math.Min(s.SubGroupSize, largest)) + s.MasterWeights.SlotScratch(Math.Min(s.SubGroupSize, largest))) * Math.Max(1, s.OptimizerBufferCount),
                    $"{s.OptimizerBufferCount} buffers of [master | m | v | gradient] per sub-group{EightBitNote(s)}", "--sub-group-size or --optimizer-buffer-count");
        }
        var gradients = resident ? OffloadTier.None : s.EffectiveGradientOffload == OffloadTier.Nvme ? OffloadTier.Nvme : OffloadTier.Cpu;
        bool bf16Gradients = gradients == OffloadTier.Cpu && HostGradientsInBf16(s);
        if (gradients == OffloadTier.Cpu && !bf16Gradients)
            Add("gradients", PerUnit(4), $"fp32 per unit{(gpu ? ", page-locked" : "")}; the initial weights are made in them", "--offload-gradients nvme", pinned: gpu);
        else if (bf16Gradients)
            Add("gradients", PerUnit(2), $"bf16 per unit{(gpu ? ", page-locked" : "")}: bf16, exact at accumulation 1 (never summed; widened for the optimizer)", "--offload-gradients nvme", pinned: gpu);
        else if (gradients == OffloadTier.Nvme)
            Add("gradient buffer", Aligned(Bytes.OfElements(largest, 4)), "one unit's fp32 gradient", "--offload-gradients nvme");
        // With copy streams, later micro-batches download into one page-locked staging buffer of the largest unit and are added from there.
        if (gpu && gradients == OffloadTier.Cpu && s.GradAccumulation > 1)
            Add("gradient staging", Aligned(Bytes.OfElements(largest, pb)), $"one unit's gradient in the training precision, page-locked: later micro-batches download into it and are added to the sum",
                "--grad-accumulation 1", pinned: true);
        // The delayed schedule's pending update reads one step's gradients while the next step accumulates into a second store.
        if (s.Schedule == StepSchedule.Delayed && gradients == OffloadTier.Cpu)
            Add("gradients of the pending update", PerUnit(bf16Gradients ? 2 : 4), $"the delayed schedule's second store{(gpu ? ", page-locked" : "")}: the update of step i reads it while step i+1 accumulates",
                "--schedule overlapped", pinned: gpu);
        if (gradients == OffloadTier.Nvme || bf16Gradients)
        {
            // Without an fp32 gradient sum per unit in RAM the initial weights are made in worker arrays: about 2 GiB of layers and the outer block.
            long layers = Math.Clamp(InitialLookAhead.Value / Math.Max(1, 4 * layer), 1, m.NumLayers);
            Add("initial values in flight", Bytes.OfElements(layers * layer + outer, 4), "start-up only: fp32 units being made",
                gradients == OffloadTier.Nvme ? "--offload-gradients cpu" : "none (start-up only)");
        }
        if (OffloadsCheckpoints(s))
        {
            long tokens = (long)s.MicroBatch * s.SeqLen;
            Add("activation checkpoints", Aligned(PerTokens(EngineActivations.LayerInputBytesPerToken(m, s), tokens)) * m.NumLayers,
                $"every layer's input between its forward and its recompute{(gpu ? ", page-locked" : "")}", "--offload-activations none or --micro-batch", pinned: gpu);
        }
        if (!gpu)
            // No device budget on a CPU: the head is the forced one, or the fused one where it lowers the bytes (EngineHeadLoss.Choose).
            foreach (MemoryItem d in DeviceItems(m, s, EngineHeadLoss.IsFused(s.HeadLoss, (long)s.MicroBatch * s.SeqLen, m.VocabSize, m.HiddenSize, s.Precision), out _))
                Add("device: " + d.Name, d.Bytes, d.Note ?? "", resident ? "--offload-params nvme" : "--micro-batch or --seq-len");
        Add("runtime baseline", gpu ? GpuRuntimeBaseline : CpuRuntimeBaseline, gpu ? ".NET and libtorch with CUDA (estimate)" : ".NET and CPU libtorch (estimate)", "none (fixed per process)");
        // The residual scales with the model only where per-parameter state is in RAM; with everything on NVMe the host holds buffers alone.
        // It was fitted to a CPU run, where autograd's graph and temporaries live in RAM beside the named items; on a GPU the
        // measured runs hold no residual (gpt2-xl, the 3B shape, llama-2-7b and -13b: the named items alone plan 3–8% above
        // their peak RSS), so a GPU run plans none.
        bool perParameterInRam = s.ParamOffload != OffloadTier.Nvme || s.OptimizerOffload != OffloadTier.Nvme || gradients == OffloadTier.Cpu;
        if (perParameterInRam && !gpu)
            Add("unattributed", new Bytes((long)(p * UnattributedHostBytesPerParameter)), "managed heap and C heap beyond the named buffers (fitted; see docs/memory-model.md)", "none");
        return items;
    }

    /// <summary>Bytes of fp32 initial values the engine makes at once when it has no gradient sum per unit in RAM to make them in (Engine InitialWeights.StoreAll's default).</summary>
    public static readonly Bytes InitialLookAhead = Bytes.FromGiB(2);

    private static List<MemoryItem> NvmeItems(ModelSpec m, TrainingSettings s)
    {
        long p = m.TotalParameters;
        var items = new List<MemoryItem>();
        if (s.ParamOffload == OffloadTier.Nvme)
        {
            // Units max_in_cpu keeps in RAM have no swap file; the node's ranks hold the other units' shards between them.
            long kept = ParameterPlacement.EngineSplit(m, s, Ranks(s)).Ram * Ranks(s);
            long onNvme = Math.Max(0, p - kept);
            if (onNvme > 0)
                items.Add(new MemoryItem("parameters", Bytes.OfElements(onNvme, s.ParamBytes), kept > 0 ? "one file per unit not kept in RAM (max_in_cpu)" : "one file per unit"));
        }
        // The node's ranks between them: each holds on NVMe what its budget leaves of its shard.
        if (s.OptimizerOffload == OffloadTier.Nvme && RankOptimizerSplit(m, s).Nvme * RanksOf(s) is > 0 and var nvme)
            items.Add(new MemoryItem("optimizer states", s.OptimizerState.StateBytes(nvme) - s.MasterWeights.SwappedStateSaving(nvme), $"fp32 master, Adam m and v{EightBitNote(s)} per sub-group"));
        if (s.EffectiveGradientOffload == OffloadTier.Nvme) items.Add(new MemoryItem("gradient partition", Bytes.OfElements(p, 4), "fp32, summed across micro-batches"));
        return items;
    }

    private static (Bytes Gpu, Bytes Cpu) StateBytes(ModelSpec m, TrainingSettings s)
    {
        long p = m.TotalParameters;
        if (IsResident(s)) return (Bytes.OfElements(p, 2 * s.ParamBytes + (s.IsMixedPrecision ? 12 : 8)), Bytes.Zero);
        Bytes cpu = Bytes.Zero;
        if (s.ParamOffload == OffloadTier.Cpu) cpu += Bytes.OfElements(p, s.ParamBytes);
        // The node's total: every rank keeps its shard of the same units.
        if (s.ParamOffload == OffloadTier.Nvme) cpu += Bytes.OfElements(ParameterPlacement.EngineSplit(m, s, Ranks(s)).Ram * Ranks(s), s.ParamBytes);
        cpu += s.OptimizerState.StateBytes(s.OptimizerOffload != OffloadTier.Nvme ? p : RankOptimizerSplit(m, s).Ram * RanksOf(s));
        if (s.EffectiveGradientOffload != OffloadTier.Nvme) cpu += Bytes.OfElements(p, HostGradientBytes(s));
        long onDevice = s.ParamOffload == OffloadTier.None ? p : LayerSlots(m, s) * m.LayerParameters + OuterElements(m);
        return (Bytes.OfElements(2 * onDevice, s.ParamBytes), cpu);
    }

    /// <summary>Elements of optimizer state in RAM and on NVMe with the optimizer on NVMe: <see cref="OptimizerPlacement"/> over the engine's sub-groups at the state format's bytes.</summary>
    public static (long Ram, long Nvme) OptimizerSplit(ModelSpec m, TrainingSettings s)
    {
        var order = OptimizerPlacement.EngineUpdateOrder(m.NumLayers, m.LayerParameters, OuterElements(m), s);
        return OptimizerPlacement.Split(order, OptimizerPlacement.InRam(order, s.OptimizerState.BytesPerParameter(), s));
    }

    /// <summary>The name of the host item holding the delayed schedule's second host copy of the parameters.</summary>
    public const string DelayedSpareParametersItem = "parameters (spare copy of the delayed schedule)";

    /// <summary>The name of the host item holding the parameters max_in_cpu keeps in RAM (the plan's memory table shows it).</summary>
    public const string KeptParametersItem = "parameters kept in RAM (max_in_cpu)";

    private static Bytes Aligned(Bytes bytes) => new((bytes.Value + 4095) / 4096 * 4096);

    private static Bytes PerTokens(double bytesPerToken, long tokens) => new((long)Math.Ceiling(bytesPerToken * tokens));

    private static Bytes Sum(IEnumerable<MemoryItem> items) => items.Aggregate(Bytes.Zero, (sum, i) => sum + i.Bytes);
}

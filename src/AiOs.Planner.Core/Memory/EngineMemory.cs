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
public static partial class EngineMemory
{
    /// <summary>
    /// Device memory beyond the tensors that grows with none of them: the CUDA context, libtorch's and NVRTC's kernels,
    /// cuBLAS workspaces. Fitted (with <see cref="AllocatorSlack"/> kept) to the median of 25 engine runs on the H100 VM
    /// (2026-12-05, docs/validation/h100-2026-12-05-s6: every run with the fused head, resident and offloaded, gpt2 to
    /// llama-2-7b; what each reports beyond its items ranged 0.7–2.1 GiB, one outlier −0.3). The unfused head's runs are left
    /// out: their logits are priced short (EngineHeadLoss), which the earlier fit (2314 MiB, two unfused runs on the H200) absorbed.
    /// </summary>
    /// <remarks>
    /// The layer-by-layer trainer's only (anything offloaded); the resident trainer's is <see cref="ResidentRuntimeFloor"/>.
    /// Refitted on 2026-12-06 (fourteenth session) with <see cref="StreamedAllocatorSlack"/>, by least squares on what eleven
    /// distinct offloaded settings measured beyond their items on five H100 VMs (s11 to s14 grids: 1,029–1,477 MiB, the same
    /// figure for a setting on every VM): 1,240 MiB with the resident 2.7% slack had planned gpt2-medium at micro-batch 2
    /// 13.8% high; with each setting left out of the fit in turn the largest error is 8.4% (docs/memory-model.md).
    /// </remarks>
    public static readonly Bytes CudaContext = Bytes.FromMiB(1088);

    /// <summary>
    /// The layer-by-layer trainer's allocator slack, a share of its allocated peak (fitted with <see cref="CudaContext"/>): its
    /// transient blocks (packed downloads, a recomputed layer, the loss's chunks) vary in size from operation to operation, so
    /// what the caching allocator keeps grows with them, about 10%, where the resident trainer's steady blocks leave 2.7%.
    /// </summary>
    public const double StreamedAllocatorSlack = 0.097;

    /// <summary>
    /// The resident trainer's device memory beyond its tensors, measured: tiny-gpt and tiny-llama (about 3 MB of tensors) reported
    /// 855 MiB on four lent H100 VMs (docs/validation/h100-2026-12-06-s11/grid*, h100-2026-12-06-s12/grid and slow-vm-grid), against
    /// <see cref="CudaContext"/>'s 1,240, which planned them 45% high. With it and <see cref="AllocatorSlack"/> the s11 and
    /// s12 grids' larger resident runs (gpt2 to llama-3.2-3b, 3.7–55 GiB), which did not set it, come out within 3%. The
    /// layer-by-layer trainer keeps <see cref="CudaContext"/>: its runs hold 0.25–0.45 GiB more beyond their items (its copy
    /// streams, their events and staging, and what the caching allocator keeps per stream are the suspects; not itemised).
    /// </summary>
    public static readonly Bytes ResidentRuntimeFloor = Bytes.FromMiB(855);

    /// <summary>The device memory beyond the tensors for <paramref name="s"/>'s trainer (<see cref="ResidentRuntimeFloor"/> or <see cref="CudaContext"/>).</summary>
    public static Bytes RuntimeReserve(TrainingSettings s) => IsResident(s) ? ResidentRuntimeFloor : CudaContext;

    /// <summary>The allocator slack of <paramref name="s"/>'s trainer (<see cref="AllocatorSlack"/> or <see cref="StreamedAllocatorSlack"/>).</summary>
    public static double SlackOf(TrainingSettings s) => IsResident(s) ? AllocatorSlack : StreamedAllocatorSlack;

    /// <summary>
    /// What the caching allocator reserves beyond the tensors alive at the peak (block rounding, freed blocks it keeps,
    /// fragmentation), as a share of the allocated peak: the resident trainer's (the layer-by-layer one's is
    /// <see cref="StreamedAllocatorSlack"/>).
    /// </summary>
    public const double AllocatorSlack = 0.027;

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
        var device = DeviceItems(m, s, fused, hw.HasGpu, out string phase);
        var host = HostNeed(m, s, gpu, hw.Cpu.Cores);
        var pinned = host.Where(i => i.Pinned).Select(i => i.Item with { Bytes = i.Item.Bytes * processes }).ToList();
        var pageable = host.Where(i => !i.Pinned).Select(i => i.Item with { Bytes = i.Item.Bytes * processes }).ToList();
        List<MemoryItem> gpuItems = [];
        Bytes reserve = Bytes.Zero;
        if (gpu)
        {
            gpuItems.AddRange(device);
            reserve = RuntimeReserve(s) + Sum(device) * SlackOf(s);
            gpuItems.Add(new MemoryItem("framework reserve", reserve, IsResident(s)
                ? "CUDA context and kernels (measured on the smallest runs) and caching-allocator slack (fitted), see docs/memory-model.md"
                : "CUDA context, the copy streams' share and caching-allocator slack (fitted, see docs/memory-model.md)"));
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
        Bytes items = Sum(DeviceItems(m, PerProcess(hw, s), fused, hw.HasGpu, out _));
        return items + RuntimeReserve(s) + items * SlackOf(s);
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
    private static string LogitsNote(ModelSpec m, TrainingSettings s, long tokens, bool fused, bool gpu)
    {
        bool kernel = fused && EngineHeadLoss.UsesKernel(gpu, s.Precision);
        string why = s.HeadLoss != HeadLoss.Auto ? "head_loss " + Descriptions.Choice.NameOf(s.HeadLoss)
            : kernel ? "auto: with its kernel the faster and the smaller head"
            : fused ? "auto: the unfused head's logits would not fit the device"
            : EngineHeadLoss.FusingSavesBytes(tokens, m.VocabSize, m.HiddenSize, s.Precision) ? "auto: the unfused head fits the device and is the faster"
            : "auto: too few tokens for the fused head's weight gradient to pay";
        return fused
            ? $"fused head and loss ({why}): logits of {Math.Min(tokens, EngineHeadLoss.ChunkTokens(m.VocabSize)):N0} tokens at a time{(kernel ? ", turned into their gradient in place by one kernel" : "")}; the normed states' gradient and the head weight's summed gradient stay"
            : $"unfused head ({why}): the loss's backward, fp32 log-softmax, its gradient and nll_loss's (more than the forward's {(s.IsMixedPrecision ? $"{s.ParamBytes * 8}-bit logits, " : "")}fp32 logits and log-softmax)";
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

    private static List<MemoryItem> DeviceItems(ModelSpec m, TrainingSettings s, bool fused, bool gpu, out string phase)
    {
        int pb = s.ParamBytes;
        long p = m.TotalParameters, tokens = (long)s.MicroBatch * s.SeqLen;
        var items = new List<MemoryItem>();
        Bytes layerFull = PerTokens(EngineActivations.LayerBytesPerToken(m, s), tokens);
        Bytes input = PerTokens(EngineActivations.LayerInputBytesPerToken(m, s), tokens);
        Bytes head = EngineHeadLoss.PeakBytes(m, s, tokens, fused, gpu); // the head the engine runs (EngineHeadLoss.Choose)
        if (IsResident(s))
        {
            items.Add(new MemoryItem("parameters", Bytes.OfElements(p, pb), $"{pb}-byte working copy, every unit resident"));
            items.Add(new MemoryItem("gradients", Bytes.OfElements(p, pb), "one flat buffer per unit, each unit's gradients packed into it as its backward ends"));
            // 8-bit moments (the device 8-bit AdamW): 1 byte per value and an fp32 scale per 2,048 each, instead of 4 bytes.
            items.Add(new MemoryItem("optimizer states", StateLayout.OptimizerState(s, p),
                (s.IsMixedPrecision ? "fp32 master, Adam m and v" : "Adam m and v (the fp32 parameters are the master)") + EightBitNote(s)));
            if (s.GradAccumulation > 1 && s.IsMixedPrecision)
                items.Add(new MemoryItem("gradient accumulators", Bytes.OfElements(p, 4), "fp32 sums across micro-batches"));
            // DeviceTrainer keeps every layer's graph without checkpointing, each layer's input with it (then one layer recomputed).
            Bytes stored = s.ActivationCheckpointing ? input * m.NumLayers + layerFull : layerFull * m.NumLayers;
            items.Add(new MemoryItem("activations", stored, s.ActivationCheckpointing ? "layer inputs, one layer recomputed" : "every layer's autograd graph"));
            // --cuda-graphs (Engine's LayerGraphs): the graphs read and write fixed tensors, kept for the run: layer 0's input, the
            // last layer's given gradient and every layer's input gradient (eager backward holds one at a time); with fp32
            // accumulation each layer's packed gradients too, beside the buffer they are added into.
            if (gpu && Settings.CudaGraphRule.Replays(s))
            {
                Bytes packed = s.GradAccumulation > 1 && !s.IsMixedPrecision ? Bytes.OfElements(m.LayerParameters * m.NumLayers, pb) : Bytes.Zero;
                items.Add(new MemoryItem("CUDA graphs' fixed tensors", input * (m.NumLayers + 2L) + packed,
                    "every layer's input gradient, layer 0's input and the last layer's given gradient" + (packed > Bytes.Zero ? ", and each layer's packed gradients" : "")));
            }
            // In a layer's backward its output (recomputed under checkpointing), the gradient it was given and its input's gradient
            // are on the device besides what autograd saved; the logits are gone by then (BackwardKept).
            // A layer's gradients, as autograd makes them, wait beside the buffers until its backward ends and they are packed
            // (DeviceTrainer.Land); by then autograd has freed that layer's saved activations, about as large at micro-batch 1 and
            // larger beyond (gpt2-xl at 1,024 tokens: 61 MB of gradients against 59 MB saved per layer at micro-batch 1, 8× that at
            // 8), so nothing is added.
            Bytes keptResident = BackwardKept(input);
            if (keptResident > head)
            {
                items.Add(new MemoryItem(KeptBackwardItem, keptResident, KeptBackwardNote));
                phase = "backward";
                return items;
            }
            items.Add(new MemoryItem("logits and loss", head, LogitsNote(m, s, tokens, fused, gpu)));
            phase = "end of forward (loss)";
            return items;
        }
        if (!gpu) return StreamedItemsOnCpu(m, s, fused, items, layerFull, input, head, tokens, out phase);
        long layer = m.LayerParameters, outer = OuterElements(m);
        // The items held from the forward through the backward: the parameters and every layer's input. The rest depends on the
        // moment, the head's loss or a layer's backward, and the peak is the larger (2026-12-06: both were summed before, as were
        // the slots' gradients and the recomputed layer at the loss, 0.2–0.4 GiB above the H100 VM's offloaded runs,
        // docs/validation/h100-2026-12-06-s11/grid2).
        if (s.ParamOffload == OffloadTier.None)
        {
            // ParameterSwapper's device tier: every unit keeps its own module on the device.
            items.Add(new MemoryItem("parameters", Bytes.OfElements(p, pb), $"{pb}-byte working copy of every unit"));
        }
        else
        {
            // ParameterSwapper.Prepare allocates one FlatParameters per device slot and one for the outer block, parameters only:
            // their gradients are autograd's, made in backward (below).
            int slots = LayerSlots(m, s);
            items.Add(new MemoryItem("layer slots", Bytes.OfElements(layer, pb) * slots, $"{slots} slot(s) (prefetch depth + 1): parameters"));
            items.Add(new MemoryItem("outer block", Bytes.OfElements(outer, pb), "embeddings, final norm and head: parameters, on the device for the whole step"));
        }
        // LayerwiseTrainer always runs forward without autograd and recomputes in backward: layer inputs stay, one layer is recomputed.
        // With checkpoints in CPU RAM it keeps two inputs on the device (one copying out or back, one in use); the step program orders it so.
        if (OffloadsCheckpoints(s))
            items.Add(new MemoryItem("activations", input * DeviceCheckpoints(m), $"{DeviceCheckpoints(m)} layer inputs (the rest in CPU RAM)"));
        else
            items.Add(new MemoryItem("activations", input * m.NumLayers, "every layer's input (the embedding's output is layer 0's)"));
        // With gradients in CPU RAM and the GPU's copy streams, each unit's first micro-batch leaves as one copy packed on the
        // device (fp32, or bf16 when the host keeps bf16: HostGradientsInBf16). CpuGradientStore frees a packed copy only when
        // it settles the unit: at most MaxInFlight (2) after each download, and for later micro-batches only the unit being
        // downloaded. So in backward three layers' copies are on the device: two in flight and the one AfterBackward packed on
        // the compute thread while the download worker still waits to settle the oldest (the outer block's download starts
        // after the embedding's backward, when the layer inputs are gone); and with accumulation the last two of the first micro-batch, layer 0's and
        // the outer block's, stay through every later micro-batch's forward and loss until its own downloads of those units,
        // while each later unit crosses packed in the training precision (CpuGradientStore.QueueThroughCopyStream), kept until
        // its add has seen the copy land: as many as there are staging buffers when the adds lag. The Llama
        // shapes on the H200 (2026-12-05), whose logits are small against their layers, were 1.2–2.4 GiB above the plan
        // without them (docs/validation/h200-engine-grid-2026-12-05.md).
        bool downloads = !IsResident(s) && s.EffectiveGradientOffload != OffloadTier.Nvme;
        int downloadBytes = HostGradientBytes(s);
        Bytes leftOver = downloads && s.GradAccumulation > 1 ? Bytes.OfElements(layer + outer, downloadBytes) : Bytes.Zero;
        Bytes inFlight = !downloads ? Bytes.Zero
            : Max(Bytes.OfElements(3 * layer, downloadBytes), leftOver + (leftOver > Bytes.Zero ? Bytes.OfElements(layer, pb) * (Ranks(s) == 1 ? Simulation.Program.ProgramShape.Engine.GradientStagingBuffers : 1) : Bytes.Zero));
        // In a layer's backward: the layer recomputed with autograd (LayerwiseTrainer.Recompute), its output, the gradient it
        // was given and its input's gradient (BackwardKept); the layer's parameter gradients until they are packed
        // (FlatParameters.TakePackedGradients drops them); and the head weight's gradient with the final norm's, which the
        // head's backward gave the outer block and which stay until its download after the embedding's backward (the
        // embedding's own gradient appears only then, with the layers gone). The logits are gone by then.
        Bytes recomputed = layerFull;
        Bytes kept = BackwardKept(input);
        Bytes embeddingGradient = EmbeddingGradientSegment(m, s, tokens, fused, gpu);
        Bytes gradients = Bytes.OfElements(layer + (long)m.VocabSize * m.HiddenSize + m.NormParameters, pb);
        Bytes backward = recomputed + kept + gradients + inFlight;
        // The head's figure counts the embedding's output (EngineHeadLoss.FusedBytes, UnfusedBytes), which here is layer 0's
        // input (LayerwiseTrainer.Forward: LayerInputs[0] is the embedding's output), already in the activations.
        head = head > input ? head - input : Bytes.Zero;
        if (!fused)
        {
            // The unfused head's tensors are the largest the step makes (the whole micro-batch's logits, their fp32 copy and
            // log-softmax: 0.8–1.6 GiB each for gpt2-xl at 8,192 tokens). They are asked for after every layer input, which
            // the caching allocator cut from the blocks the last backward freed, so they take segments of their own, and the
            // backward's blocks stay reserved beside them: the loss's and a layer's backward are both on the device's figure.
            // Priced as the larger of the two, the unfused gpt2-xl runs on the H100 VM and the H200
            // (docs/validation/h100-2026-12-06-s10/callA/o-g2xl-*, h200-2026-12-06-s10/calld/d-g2xl-*, h100-2026-12-05-s8)
            // came out 11% short; the fused head's chunks are small and reuse the backward's blocks (grid2's offloaded runs).
            items.Add(new MemoryItem("logits and loss", head, LogitsNote(m, s, tokens, fused, gpu)));
            items.Add(new MemoryItem("recomputed layer", recomputed, "one layer's activations, recomputed with autograd for its backward (reserved beside the unfused head's blocks)"));
            items.Add(new MemoryItem(KeptBackwardItem, kept, KeptBackwardNote));
            items.Add(new MemoryItem("gradients", gradients, "one layer's until packed, and the head weight's and final norm's from the head's backward"));
            // The copies left in flight at the loss (leftOver) are among backward's (inFlight holds them): counted once.
            if (inFlight > Bytes.Zero)
                items.Add(new MemoryItem("gradient downloads in flight", inFlight, "packed gradients for their download (reserved beside the unfused head's blocks)"));
            AddEmbeddingGradient(items, embeddingGradient);
            phase = "head and loss, beside backward's blocks";
            return items;
        }
        // The fused head's figure counts the head weight's summed gradient itself (EngineHeadLoss.FusedBytes).
        if (backward > head + leftOver)
        {
            items.Add(new MemoryItem("recomputed layer", recomputed, "one layer's activations, recomputed with autograd for its backward"));
            items.Add(new MemoryItem(KeptBackwardItem, kept, KeptBackwardNote));
            items.Add(new MemoryItem("gradients", gradients, "one layer's until packed, and the head weight's and final norm's from the head's backward"));
            if (inFlight > Bytes.Zero)
            {
                string packedAs = downloadBytes == 2 ? "bf16 (the host keeps bf16, exact at accumulation 1)" : "fp32";
                items.Add(new MemoryItem("gradient downloads in flight", inFlight, leftOver > Bytes.Zero
                    ? $"the first micro-batch's last two ({packedAs}: layer 0's and the outer block's, held until settled) and one later unit's in the training precision"
                    : $"three layers' gradients packed in {packedAs}: two downloads in flight and one waiting (backward; the logits are gone)"));
            }
            AddEmbeddingGradient(items, embeddingGradient);
            phase = "backward";
        }
        else
        {
            items.Add(new MemoryItem("logits and loss", head, LogitsNote(m, s, tokens, fused, gpu)));
            if (leftOver > Bytes.Zero)
                items.Add(new MemoryItem("gradient downloads in flight", leftOver, "the first micro-batch's last two, layer 0's and the outer block's, packed in fp32 and held until a later micro-batch's download of the same unit settles them"));
            AddEmbeddingGradient(items, embeddingGradient);
            phase = "head and loss";
        }
        return items;
    }

    private static void AddEmbeddingGradient(List<MemoryItem> items, Bytes bytes)
    {
        if (bytes > Bytes.Zero)
            items.Add(new MemoryItem("embedding gradient segment", bytes,
                "the embedding's backward makes a dense vocabulary × hidden gradient after every layer's blocks were freed; none of the freed blocks is that large, so the caching allocator reserves a segment for it on top of the step's earlier peak"));
    }

    /// <summary>
    /// The reserved bytes a streamed run's embedding backward adds on a GPU: autograd's index_select backward makes a dense
    /// vocabulary × hidden gradient (added into the tied head's, or kept as the untied embedding's) at the end of backward. The
    /// caching allocator serves it from a freed block only where one is as large: the head padded to <see cref="EngineHeadLoss.MatmulVocab"/>
    /// rows (its copy is freed after the loss), a chunk's or the unfused head's logits, fp16's fp32 head gradient. Layer
    /// blocks are far smaller. Without one it takes a new segment above everything reserved before: llama-3.2-3b (vocabulary
    /// 128,256, unpadded) ran 0.73 GiB above its plan from that moment (H100 VM, 2026-12-06, docs/validation/h100-2026-12-06-s14);
    /// GPT-2's padded head (50,257 → 50,304 rows) leaves a block that holds it.
    /// </summary>
    internal static Bytes EmbeddingGradientSegment(ModelSpec m, TrainingSettings s, long tokens, bool fused, bool gpu)
    {
        if (!gpu) return Bytes.Zero;
        long a = s.ParamBytes, v = m.VocabSize, h = m.HiddenSize, padded = EngineHeadLoss.MatmulVocab(v, s.Precision);
        long need = checked(a * v * h);
        long paddedCopy = padded == v ? 0 : checked(a * padded * h);
        long rows = Math.Min(tokens, EngineHeadLoss.ChunkTokens(v));
        long logits = !fused ? checked(tokens * v * 4)
            : EngineHeadLoss.UsesKernel(gpu, s.Precision) ? checked(rows * padded * a) : checked(rows * padded * 4);
        // The fused fp16 head's fp32 weight gradient (FusedBytes' end); the unfused fp16 head has only its logits.
        long fp16Gradient = fused && s.Precision == Precision.Fp16 ? checked(4 * v * h) : 0;
        return Math.Max(paddedCopy, Math.Max(logits, fp16Gradient)) >= need ? Bytes.Zero : new Bytes(need);
    }

    private static Bytes Max(Bytes a, Bytes b) => a > b ? a : b;

    /// <summary>
    /// A streamed run's working set on a CPU device, as priced before 2026-12-06: the head's and a layer's backward items
    /// summed, the slots and the outer block with their gradients. It is host RAM there (EngineMemory.Host lists it with a
    /// <c>device: </c> prefix), where freed tensors' pages need not leave the resident set, and the CI CPU run's RSS anchor
    /// (ExecutorAnchorTests) holds it; the GPU's phases (<see cref="DeviceItems"/>) follow the CUDA allocator's tensors.
    /// </summary>
    private static List<MemoryItem> StreamedItemsOnCpu(ModelSpec m, TrainingSettings s, bool fused, List<MemoryItem> items, Bytes layerFull, Bytes input, Bytes head, long tokens, out string phase)
    {
        int pb = s.ParamBytes;
        long p = m.TotalParameters;
        const bool gpu = false;
        long layer = m.LayerParameters, outer = OuterElements(m);
        if (s.ParamOffload == OffloadTier.None)
        {
            // ParameterSwapper's device tier: every unit keeps its own module on the device. Autograd's gradients live only
            // from a unit's backward until they are packed for their download (FlatParameters.TakePackedGradients drops
            // them): one layer's, and the outer block's from the head's backward to the embedding's.
            items.Add(new MemoryItem("parameters", Bytes.OfElements(p, pb), $"{pb}-byte working copy of every unit"));
            items.Add(new MemoryItem("gradients", Bytes.OfElements(layer + outer, pb), "one layer's and the outer block's, until packed for their download"));
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
        // In a layer's backward its recomputed output, the gradient it was given and its input's gradient are on the device
        // besides what autograd saved; the logits are gone by then (BackwardKept).
        Bytes kept = BackwardKept(input);
        if (kept + downloads > head)
        {
            items.Add(new MemoryItem(KeptBackwardItem, kept, KeptBackwardNote));
            if (downloads > Bytes.Zero)
            {
                string packedAs = downloadBytes == 2 ? "bf16 (the host keeps bf16, exact at accumulation 1)" : "fp32";
                items.Add(new MemoryItem("gradient downloads in flight", downloads, $"two units' gradients packed in {packedAs} for their download (backward; the logits are gone)"));
            }
            phase = "backward";
        }
        else
        {
            items.Add(new MemoryItem("logits and loss", head, LogitsNote(m, s, tokens, fused, gpu)));
            phase = "head and loss";
        }
        return items;
    }

    /// <summary>The device item of the layer output and gradients a layer's backward holds besides its saved activations (the plan's memory table shows it).</summary>
    public const string KeptBackwardItem = "layer output and gradients in backward";

    private const string KeptBackwardNote = "one layer's output (recomputed under checkpointing), the gradient it was given and its input's gradient; both trainers free them after each layer's backward";

    /// <summary>
    /// What a layer's backward holds on the device besides its saved activations: its output, the gradient it was given and
    /// the input gradient it makes, each one layer input's size. The trainers free the first two (and the detached input that
    /// held the gradient) as soon as the third exists (LayerwiseTrainer and DeviceTrainer ReleaseLayerBackward, 2026-12-05);
    /// before, every layer's output and input gradient stayed in the micro-batch's dispose scope until the embedding's backward,
    /// 2 × inputs per layer (2.3 GiB for gpt2-xl at 8 × 1,024 tokens).
    /// </summary>
    public static Bytes BackwardKept(Bytes layerInput) => layerInput * 3;

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

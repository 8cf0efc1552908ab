using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Memory;

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
    /// <summary>Device memory the CUDA context and libtorch's kernels take before the first tensor (estimate: H200 with PyTorch 2.x libraries, ~0.6 GiB).</summary>
    public static readonly Bytes CudaContext = Bytes.FromMiB(600);

    /// <summary>
    /// What the caching allocator reserves beyond the tensors alive at the peak (block rounding, freed blocks it keeps,
    /// fragmentation), as a share of the allocated peak. Fitted to one measurement: gpt2-xl bf16, mb 8, seq 1024,
    /// resident, 55.6 GB on the H200 (2026-12-04); a regression guard, not a validation.
    /// </summary>
    public const double AllocatorSlack = 0.06;

    /// <summary>
    /// Host RAM of the .NET runtime and libtorch with CUDA loaded (libraries, CUDA host state, whatever the pinned
    /// allocator keeps), per process: the remainder of the H200 anchor (gpt2-xl, parameters and optimizer in RAM, RSS
    /// 45.3 GB, 2026-12-04) once every named buffer and the per-parameter residual are taken out. A regression guard,
    /// not a validation; larger than a bare CUDA process (2–4 GB), so part of it is unexplained.
    /// </summary>
    public static readonly Bytes GpuRuntimeBaseline = Bytes.FromGB(11.0);

    /// <summary>Host RAM of the .NET runtime and CPU-only libtorch, per process (estimate).</summary>
    public static readonly Bytes CpuRuntimeBaseline = Bytes.FromMiB(512);

    /// <summary>
    /// Host bytes per parameter the engine holds beyond every buffer it names (the managed heap keeping freed arrays,
    /// such as the initial fp32 weights, committed: a hypothesis). Fitted to one CPU run: gpt2, parameters and optimizer
    /// in RAM, seq 64, on the 2-core CI VM, peak RSS 3.44 GB (GNU time, 2026-12-04); a regression guard, not a validation.
    /// </summary>
    public const double UnattributedHostBytesPerParameter = 3.3;

    /// <summary>The engine's peak per tier for <paramref name="s"/>; <paramref name="gpuMemoryLimit"/> is train's --gpu-memory-limit (the ballast takes the rest of the device).</summary>
    public static MemoryPlan Plan(ModelSpec m, HardwareProfile hw, TrainingSettings s, Bytes? gpuMemoryLimit = null)
    {
        ArgumentNullException.ThrowIfNull(m);
        ArgumentNullException.ThrowIfNull(hw);
        ArgumentNullException.ThrowIfNull(s);
        int processes = Math.Max(1, s.GpusPerNode ?? hw.GpusPerNode);
        bool gpu = hw.HasGpu;
        var device = DeviceItems(m, s, out string phase);
        var host = HostItems(m, s, gpu);
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
        else
        {
            // On a CPU device the working set is host RAM.
            pageable.AddRange(device.Select(i => i with { Name = "device: " + i.Name }));
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
            ModelStatesCpu = states.Cpu * processes,
        };
    }

    /// <summary>Whether the engine keeps everything on the device (DeviceTrainer) rather than streaming units (LayerwiseTrainer).</summary>
    public static bool IsResident(TrainingSettings s) =>
        s.ParamOffload == OffloadTier.None && s.OptimizerOffload == OffloadTier.None && s.EffectiveGradientOffload == OffloadTier.None;

    /// <summary>How the item notes name 8-bit moments (empty for fp32).</summary>
    private static string EightBitNote(TrainingSettings s) => s.OptimizerState == OptimizerStateFormat.EightBit ? " (block-wise 8-bit)" : "";

    /// <summary>Elements of the outer block: token (and learned position) embeddings, final norm, untied head.</summary>
    public static long OuterElements(ModelSpec m) => m.EmbeddingParameters + m.HeadParameters;

    /// <summary>Device slots the engine streams layers through: prefetch depth + 1, at most one per layer.</summary>
    public static int LayerSlots(ModelSpec m, TrainingSettings s) => Math.Clamp(1 + Math.Max(0, s.PrefetchDepth), 1, Math.Max(1, m.NumLayers));

    private static List<MemoryItem> DeviceItems(ModelSpec m, TrainingSettings s, out string phase)
    {
        int pb = s.ParamBytes;
        long p = m.TotalParameters, tokens = (long)s.MicroBatch * s.SeqLen;
        var items = new List<MemoryItem>();
        Bytes layerFull = PerTokens(EngineActivations.LayerBytesPerToken(m, s), tokens);
        Bytes input = PerTokens(EngineActivations.LayerInputBytesPerToken(m, s), tokens);
        Bytes head = PerTokens(EngineActivations.HeadPeakBytesPerToken(m, s), tokens);
        if (IsResident(s))
        {
            items.Add(new MemoryItem("parameters", Bytes.OfElements(p, pb), $"{pb}-byte working copy, every unit resident"));
            items.Add(new MemoryItem("gradients", Bytes.OfElements(p, pb), "one flat buffer per unit, autograd accumulates in place"));
            int fp32States = s.IsMixedPrecision ? 3 : 2;
            items.Add(new MemoryItem("optimizer states", Bytes.OfElements(p, 4 * fp32States), s.IsMixedPrecision ? "fp32 master, Adam m and v" : "Adam m and v (the fp32 parameters are the master)"));
            if (s.GradAccumulation > 1 && s.IsMixedPrecision)
                items.Add(new MemoryItem("gradient accumulators", Bytes.OfElements(p, 4), "fp32 sums across micro-batches"));
            // DeviceTrainer keeps every layer's graph without checkpointing, each layer's input with it (then one layer recomputed).
            Bytes stored = s.ActivationCheckpointing ? input * m.NumLayers + layerFull : layerFull * m.NumLayers;
            items.Add(new MemoryItem("activations", stored, s.ActivationCheckpointing ? "layer inputs, one layer recomputed" : "every layer's autograd graph"));
            items.Add(new MemoryItem("logits and loss", head, "bf16 logits, fp32 upcast and log-softmax at the loss"));
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
        items.Add(new MemoryItem("activations", input * m.NumLayers + layerFull, "every layer's input, one layer recomputed with its gradients"));
        items.Add(new MemoryItem("logits and loss", head, "bf16 logits, fp32 upcast and log-softmax at the loss"));
        phase = "head and loss";
        return items;
    }

    private static List<(MemoryItem Item, bool Pinned)> HostItems(ModelSpec m, TrainingSettings s, bool gpu)
    {
        int pb = s.ParamBytes;
        long p = m.TotalParameters, layer = m.LayerParameters, outer = OuterElements(m), largest = Math.Max(layer, outer);
        var items = new List<(MemoryItem, bool)>();
        void Add(string name, Bytes bytes, string note, bool pinned = false) => items.Add((new MemoryItem(name, bytes, note), pinned));
        // PyTorch's pinned-memory allocator hands out blocks rounded up to a power of two.
        Bytes PinnedUnits(int elementBytes) => PowerOfTwo(Bytes.OfElements(layer, elementBytes)) * m.NumLayers + PowerOfTwo(Bytes.OfElements(outer, elementBytes));

        if (s.ParamOffload == OffloadTier.Cpu)
        {
            if (gpu) Add("parameters", PinnedUnits(pb), $"{pb}-byte copy per unit, pinned (blocks rounded to powers of two)", pinned: true);
            else Add("parameters", Bytes.OfElements(p, pb), $"{pb}-byte copy per unit");
        }
        else if (s.ParamOffload == OffloadTier.Nvme)
        {
            Add("parameter staging buffers", Aligned(Bytes.OfElements(layer, pb)) * Math.Max(1, s.BufferCount) + Aligned(Bytes.OfElements(outer, pb)),
                $"buffer_count {s.BufferCount} layer buffers and one for the outer block, 4 KiB aligned");
        }
        // Once anything streams (LayerwiseTrainer), the optimizer and the gradient sums live on the host unless on NVMe.
        bool resident = IsResident(s);
        if (!resident && s.OptimizerOffload != OffloadTier.Nvme)
            Add("optimizer states", s.OptimizerState.StateBytes(p), $"fp32 master, Adam m and v{EightBitNote(s)}, managed arrays");
        else if (s.OptimizerOffload == OffloadTier.Nvme)
            Add("optimizer swap buffers", Aligned(s.OptimizerState.StateBytes(Math.Min(s.SubGroupSize, largest)) + Bytes.OfElements(Math.Min(s.SubGroupSize, largest), 4)) * Math.Max(1, s.OptimizerBufferCount),
                $"{s.OptimizerBufferCount} buffers of [master | m | v | gradient] per sub-group{EightBitNote(s)}");
        var gradients = resident ? OffloadTier.None : s.EffectiveGradientOffload == OffloadTier.Nvme ? OffloadTier.Nvme : OffloadTier.Cpu;
        if (gradients == OffloadTier.Cpu)
        {
            if (gpu) Add("gradients", PinnedUnits(4), "fp32 per unit, pinned (blocks rounded to powers of two)", pinned: true);
            else Add("gradients", Bytes.OfElements(p, 4), "fp32 per unit");
        }
        else if (gradients == OffloadTier.Nvme)
        {
            Add("gradient buffer", Aligned(Bytes.OfElements(largest, 4)), "one unit's fp32 gradient");
        }
        Add("runtime baseline", gpu ? GpuRuntimeBaseline : CpuRuntimeBaseline, gpu ? ".NET and libtorch with CUDA (estimate)" : ".NET and CPU libtorch (estimate)");
        Add("unattributed", new Bytes((long)(p * UnattributedHostBytesPerParameter)), "managed heap the GC keeps committed (fitted; see docs/memory-model.md)");
        return items;
    }

    private static List<MemoryItem> NvmeItems(ModelSpec m, TrainingSettings s)
    {
        long p = m.TotalParameters;
        var items = new List<MemoryItem>();
        if (s.ParamOffload == OffloadTier.Nvme) items.Add(new MemoryItem("parameters", Bytes.OfElements(p, s.ParamBytes), "one file per unit"));
        if (s.OptimizerOffload == OffloadTier.Nvme) items.Add(new MemoryItem("optimizer states", s.OptimizerState.StateBytes(p), $"fp32 master, Adam m and v{EightBitNote(s)} per sub-group"));
        if (s.EffectiveGradientOffload == OffloadTier.Nvme) items.Add(new MemoryItem("gradient partition", Bytes.OfElements(p, 4), "fp32, summed across micro-batches"));
        return items;
    }

    private static (Bytes Gpu, Bytes Cpu) StateBytes(ModelSpec m, TrainingSettings s)
    {
        long p = m.TotalParameters;
        if (IsResident(s)) return (Bytes.OfElements(p, 2 * s.ParamBytes + (s.IsMixedPrecision ? 12 : 8)), Bytes.Zero);
        Bytes cpu = Bytes.Zero;
        if (s.ParamOffload == OffloadTier.Cpu) cpu += Bytes.OfElements(p, s.ParamBytes);
        if (s.OptimizerOffload != OffloadTier.Nvme) cpu += s.OptimizerState.StateBytes(p);
        if (s.EffectiveGradientOffload != OffloadTier.Nvme) cpu += Bytes.OfElements(p, 4);
        long onDevice = s.ParamOffload == OffloadTier.None ? p : LayerSlots(m, s) * m.LayerParameters + OuterElements(m);
        return (Bytes.OfElements(2 * onDevice, s.ParamBytes), cpu);
    }

    /// <summary>The next power of two at or above <paramref name="bytes"/> (PyTorch's CachingHostAllocator block size).</summary>
    public static Bytes PowerOfTwo(Bytes bytes) => bytes.Value <= 1 ? bytes : new Bytes(1L << (64 - System.Numerics.BitOperations.LeadingZeroCount((ulong)(bytes.Value - 1))));

    private static Bytes Aligned(Bytes bytes) => new((bytes.Value + 4095) / 4096 * 4096);

    private static Bytes PerTokens(double bytesPerToken, long tokens) => new((long)Math.Ceiling(bytesPerToken * tokens));

    private static Bytes Sum(IEnumerable<MemoryItem> items) => items.Aggregate(Bytes.Zero, (sum, i) => sum + i.Bytes);
}

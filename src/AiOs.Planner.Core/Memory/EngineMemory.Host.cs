using AiOs.Planner.Hardware;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Memory;

/// <summary>The engine's host RAM, item by item (<see cref="HostNeed"/>).</summary>
public static partial class EngineMemory
{
    /// <summary>
    /// Host RAM of the .NET runtime and libtorch with CUDA loaded (libraries, CUDA host state, the kernel warm-up), per
    /// process, beyond every named item. First fitted to six resident gpt2 runs on the H100 VM (2026-12-05). Since 2026-12-06
    /// the runs record the resident set at the end of each start-up phase, which measures it directly: the peak less what
    /// the start-up's initial values added was 1.00–1.07 GiB in six resident runs (gpt2 to gpt2-xl, H100 and H200) with the
    /// unfused head, and 1.20 GiB with the fused head's kernel (its compile and self-check), which is the GPU's default
    /// head now: the 1,233 MiB kept. Checked on 2026-12-06 against today's engine (ten resident runs with the fused head's
    /// kernel on the H100 VM, docs/validation/h100-2026-12-06-s11/grid2/r-*): the peak less the start-up phase's growth was
    /// 0.96–1.18 GiB (median 0.99), but that phase's growth includes the freed staging copy whose block the kernel warm-up
    /// takes over (<see cref="HostNeed"/>); with it added back, 1,160–1,271 MiB, median 1,219: kept.
    /// </summary>
    public static readonly Bytes GpuRuntimeBaseline = Bytes.FromMiB(1233);

    /// <summary>
    /// Host RAM of the .NET runtime and CPU-only libtorch, per process: the README's tiny-gpt run (0.1 M parameters, 3 MiB of
    /// named items) peaked at 238 MiB on the 2-core CI VM (2026-12-05); the estimate it replaced, 512 MiB, planned that run
    /// 116% high.
    /// </summary>
    public static readonly Bytes CpuRuntimeBaseline = Bytes.FromMiB(235);

    /// <summary>
    /// Host bytes per parameter the engine holds beyond every buffer it names, where per-parameter state is in RAM and the
    /// compute runs on the CPU (managed and C heap; a GPU run plans none, see <see cref="Plan"/>'s host items). Fitted (least
    /// squares, with <see cref="CpuRuntimeBaseline"/> fixed) to two CPU runs, gpt2 and gpt2-medium with parameters and
    /// optimizer in RAM, seq 128, micro-batch 1, 3 steps, on the 2-core CI VM (peak RSS 2.92 and 6.70 GiB, 2026-12-05); a
    /// regression guard, not a validation (docs/memory-model.md, "Resident runs on the CPU device").
    /// </summary>
    public const double UnattributedHostBytesPerParameter = 1.41;

    /// <summary>Name of the host item that holds one sub-group's gradients widened to fp32 for the 8-bit step (bf16 host gradients).</summary>
    public const string EightBitGradientScratchItem = "gradient scratch of the 8-bit step";

    /// <summary>Largest slice the resident trainer stages through one CPU tensor at start-up (64 Mi fp32 values, 256 MiB).</summary>
    public const long StagingSliceElements = 1L << 26;

    /// <summary>
    /// Elements of the resident trainer's staging tensor (Engine <c>DeviceTrainer</c>): the largest unit, at most
    /// <see cref="StagingSliceElements"/> (a larger unit goes through it in slices).
    /// </summary>
    public static long StagingElements(ModelSpec m)
    {
        ArgumentNullException.ThrowIfNull(m);
        return Math.Min(StagingSliceElements, Math.Max(m.LayerParameters, OuterElements(m)));
    }

    /// <summary>Bytes of fp32 initial values the engine makes at once (Engine InitialWeights' look-ahead: InOrderReusing's window, StoreAll's workers).</summary>
    public static readonly Bytes InitialLookAhead = Bytes.FromGiB(2);

    /// <summary>
    /// Units the resident trainer makes at once (Engine <c>InitialWeights.Window</c>): the look-ahead over the largest unit's
    /// fp32 values, at least two, at most one per core.
    /// </summary>
    public static int InitialWindow(ModelSpec m, int cores)
    {
        ArgumentNullException.ThrowIfNull(m);
        long largest = 4 * Math.Max(m.LayerParameters, OuterElements(m));
        return (int)Math.Clamp(InitialLookAhead.Value / Math.Max(1, largest), 2, Math.Max(2, cores));
    }

    /// <summary>
    /// Workers the streaming trainer makes units on at start-up (Engine <c>InitialWeights.StoreAll</c>): every core where the
    /// values are made in the gradient sums (<paramref name="scratch"/>), else the look-ahead over one layer's fp32 values, at
    /// least one, at most one per core.
    /// </summary>
    private static int InitialWorkers(ModelSpec m, int cores, bool scratch) =>
        scratch ? Math.Max(1, cores) : (int)Math.Clamp(InitialLookAhead.Value / Math.Max(1, 4 * m.LayerParameters), 1, Math.Max(1, cores));

    /// <summary>
    /// Optimizer swap buffers the engine's NVMe sub-group pipeline cycles through (the step program's slots): two with
    /// pipelined reading, else one. DeepSpeed's optimizer_buffer_count is not the engine's.
    /// </summary>
    public static int OptimizerSwapSlots(TrainingSettings s)
    {
        ArgumentNullException.ThrowIfNull(s);
        return s.PipelineRead ? 2 : 1;
    }

    /// <summary>
    /// The engine's host RAM for one process, item by item: the one definition the planner's <c>aios</c> executor
    /// (<see cref="Plan"/>) and the engine's refusal check (Engine's <c>HostMemoryEstimate</c>) both use. On a CPU device the
    /// device's working set (slots, activations, loss) is host RAM too and is listed with a <c>device: </c> prefix.
    /// </summary>
    /// <param name="m">The model.</param>
    /// <param name="s">Placement, buffers, batch.</param>
    /// <param name="gpu">Whether the device is a GPU (host tensors that feed it are page-locked).</param>
    /// <param name="cores">Logical cores of the host (start-up makes units on them); null: this machine's.</param>
    /// <remarks>
    /// With several ranks (<see cref="Ranks"/>), each streaming process holds its shard of every unit's per-parameter state
    /// (ZeRO-3 or ZeRO-2, padded to the ranks) and its own buffers; a resident process holds whole units. This is one process's need.
    /// Start-up items are summed with the steady ones, not maxed: what start-up allocates stays resident for the run (the
    /// managed arrays until a compacting collection, the shared array pool's arrays, the C heap that keeps freed blocks;
    /// Engine HostHeap), and the peak RSS is the process's high-water mark.
    /// </remarks>
    public static IReadOnlyList<EngineHostItem> HostNeed(ModelSpec m, TrainingSettings s, bool gpu, int? cores = null)
    {
        ArgumentNullException.ThrowIfNull(m);
        ArgumentNullException.ThrowIfNull(s);
        int pb = s.ParamBytes, threads = cores ?? Environment.ProcessorCount;
        int shards = IsResident(s) ? 1 : Ranks(s);
        // Per-parameter host state is this rank's shard of each unit (ShardLayout: ⌈elements / ranks⌉).
        long layer = Topology.ShareOf(m.LayerParameters, shards), outer = Topology.ShareOf(OuterElements(m), shards), largest = Math.Max(layer, outer);
        long p = layer * m.NumLayers + outer;
        if (shards == 1) p = m.TotalParameters;
        var items = new List<EngineHostItem>();
        void Add(string name, Bytes bytes, string note, string remedy, bool pinned = false) => items.Add(new(new MemoryItem(name, bytes, note), pinned, remedy));
        // The engine maps each unit's host tensor itself at its exact size, rounded to a 4 KiB page (Engine Native/HostBuffer).
        Bytes PerUnit(int elementBytes) => Aligned(Bytes.OfElements(layer, elementBytes)) * m.NumLayers + Aligned(Bytes.OfElements(outer, elementBytes));
        bool resident = IsResident(s);
        var gradients = resident ? OffloadTier.None : s.EffectiveGradientOffload == OffloadTier.Nvme ? OffloadTier.Nvme : OffloadTier.Cpu;
        bool bf16Gradients = gradients == OffloadTier.Cpu && HostGradientsInBf16(s);
        // LayerwiseTrainer makes seeded units in the fp32 gradient sums when one rank has them; otherwise in worker arrays.
        bool scratch = !resident && gradients == OffloadTier.Cpu && !bf16Gradients && Ranks(s) == 1;
        int initWorkers = InitialWorkers(m, threads, scratch);

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
            // ParameterSwapper.WriteBack casts a unit for its swap file in an array of its exact size, reused (Engine
            // ReusedArrays); start-up writes every unit so, on every worker at once, and the arrays it made stay for the steps.
            long nvmeLayers = m.NumLayers - keptLayers;
            Bytes rented = Bytes.Zero;
            if (nvmeLayers > 0) rented += Bytes.OfElements(layer, pb) * Math.Min(initWorkers, nvmeLayers);
            if (!outerKept) rented += Bytes.OfElements(outer, pb);
            if (rented > Bytes.Zero)
                Add("parameter write-back arrays", rented, $"{Math.Min(initWorkers, nvmeLayers)} layer(s){(outerKept ? "" : " and the outer block")} in {pb}-byte values, reused (start-up writes units on {initWorkers} worker(s))",
                    "--max-in-cpu");
        }
        // ParameterSwapper's device tier (parameters not offloaded, something else streams): each unit's module takes the
        // optimizer's updated values through its own page-locked staging copy (FlatParameters.StoreFloats), made at start-up.
        if (gpu && !resident && s.ParamOffload == OffloadTier.None)
            Add("parameter staging copies", PinnedPerModule(m, pb, m.NumLayers),
                $"one {pb}-byte copy per unit, page-locked power-of-two blocks (and the pageable copy each is pinned from): the update's values go to the device through it",
                "--offload-params cpu", pinned: true);
        // Once anything streams (LayerwiseTrainer), the optimizer and the gradient sums live on the host unless on NVMe.
        if (!resident && s.OptimizerOffload != OffloadTier.Nvme)
            Add("optimizer states", s.OptimizerState.StateBytes(p), $"fp32 master, Adam m and v{EightBitNote(s)}, managed arrays", "--offload-optimizer nvme");
        else if (s.OptimizerOffload == OffloadTier.Nvme)
        {
            var (ramElements, nvmeElements) = RankOptimizerSplit(m, s);
            if (ramElements > 0)
                Add("optimizer states", s.OptimizerState.StateBytes(ramElements), $"fp32 master, Adam m and v{EightBitNote(s)} of the sub-groups the RAM budget keeps ({s.OptimizerRamBudget})", "--optimizer-ram-budget");
            if (nvmeElements > 0)
            {
                // OptimizerStates: the program's slots hold [state | gradient] of the largest swapped sub-group; one more
                // buffer of the state alone writes the swap files at start-up and is kept.
                long group = Math.Min(s.SubGroupSize, largest);
                int slots = OptimizerSwapSlots(s);
                // A split master swaps 2 bytes of remainder instead of 4 of master, and its slot rebuilds the master beside them.
                Bytes state = s.OptimizerState.StateBytes(group) - s.MasterWeights.SwappedStateSaving(group);
                Add("optimizer swap buffers", Aligned(state + Bytes.OfElements(group, 4) + s.MasterWeights.SlotScratch(group)) * slots,
                    $"{slots} buffer(s) of [master | m | v | gradient] of one sub-group{EightBitNote(s)} ({(s.PipelineRead ? "two: pipeline_read" : "one: no pipeline_read")}; the engine has no optimizer_buffer_count)",
                    "--sub-group-size");
                Add("optimizer start-up buffer", Aligned(state), $"one [master | m | v] of one sub-group{EightBitNote(s)}: the swap files are first written through it; kept for the run",
                    "--sub-group-size");
            }
        }
        // OptimizerStates.StepEightBit (and Update's reference path): an 8-bit step of a sub-group kept in RAM takes fp32
        // gradients, which the bf16 store widens into one reused array of the largest sub-group (CpuGradientStore.Get into
        // _gradientScratch). fp32 AdamW reads the bf16 bits as they are (CpuAdamStep.UpdateBf16Gradients), and an fp32 store
        // hands out its own sums: neither writes it.
        bool ramSubGroups = s.OptimizerOffload != OffloadTier.Nvme || RankOptimizerSplit(m, s).Ram > 0;
        if (!resident && bf16Gradients && s.OptimizerState == OptimizerStateFormat.EightBit && ramSubGroups)
            Add(EightBitGradientScratchItem, Bytes.OfElements(Math.Min(s.SubGroupSize, largest), 4),
                "one sub-group's bf16 gradients widened to fp32 for the 8-bit step of the sub-groups in RAM, reused", "--sub-group-size");
        if (gradients == OffloadTier.Cpu && !bf16Gradients)
            Add("gradients", PerUnit(4), $"fp32 per unit{(gpu ? ", page-locked" : "")}; the initial weights are made in them", "--offload-gradients nvme", pinned: gpu);
        else if (bf16Gradients)
            Add("gradients", PerUnit(2), $"bf16 per unit{(gpu ? ", page-locked" : "")}: bf16, exact at accumulation 1 (never summed; widened for the optimizer)", "--offload-gradients nvme", pinned: gpu);
        else if (gradients == OffloadTier.Nvme)
        {
            Add("gradient buffer", Aligned(Bytes.OfElements(largest, 4)), "one unit's fp32 gradient", "--offload-gradients nvme");
            // FlatParameters.DrainThroughHost: each device module drained to NVMe keeps one page-locked host copy of its gradients
            // in the training precision (PyTorch's pinned allocator: power-of-two blocks): every unit's module when the
            // parameters stay on the device, else the layer slots' and the outer block's.
            if (gpu)
            {
                long layerModules = s.ParamOffload == OffloadTier.None ? m.NumLayers : LayerSlots(m, s);
                Add("gradient host copies", PinnedPerModule(m, pb, layerModules),
                    $"{layerModules} layer module(s) and the outer block, {pb}-byte gradients, page-locked power-of-two blocks (and the pageable copy each is pinned from)", "--offload-gradients cpu", pinned: true);
            }
        }
        // With copy streams (one process), later micro-batches download into page-locked staging buffers of the largest unit,
        // taken in turn, and are added from there; several ranks download without copy streams and add from the parameters' own.
        if (gpu && gradients == OffloadTier.Cpu && s.GradAccumulation > 1 && Ranks(s) == 1)
        {
            int staging = Simulation.Program.ProgramShape.Engine.GradientStagingBuffers;
            Add("gradient staging", Aligned(Bytes.OfElements(largest, pb)) * staging,
                $"{staging} buffer(s) of one unit's gradient in the training precision, page-locked: later micro-batches download into them in turn and are added to the sum from there",
                "--grad-accumulation 1", pinned: true);
        }
        // The delayed schedule's pending update reads one step's gradients while the next step accumulates into a second store.
        if (s.Schedule == StepSchedule.Delayed && gradients == OffloadTier.Cpu)
            Add("gradients of the pending update", PerUnit(bf16Gradients ? 2 : 4), $"the delayed schedule's second store{(gpu ? ", page-locked" : "")}: the update of step i reads it while step i+1 accumulates",
                "--schedule overlapped", pinned: gpu);
        if (resident)
        {
            // DeviceTrainer (InitialWeights.InOrderReusing): the window's layer arrays and one for the outer block, reused.
            int window = InitialWindow(m, threads);
            long layers = Math.Min(window, m.NumLayers);
            Add("initial values in flight", Bytes.OfElements(layers * m.LayerParameters + OuterElements(m), 4),
                $"start-up: {layers} layer(s) and the outer block in fp32 (a window of {window} units on {threads} cores), kept by the managed heap", "none (start-up, bounded)");
            // SetMaster passes each unit through one reused CPU tensor (DeviceTrainer's staging), freed after start-up
            // (ReleaseStaging, before the kernel warm-up). Its C-heap block stays resident (HostHeap keeps freed blocks), and on
            // a GPU the kernel warm-up's host allocations (part of GpuRuntimeBaseline) take it over: in the 20 resident runs of
            // the H100 VM with start-up phases (2026-12-06, docs/validation/h100-2026-12-06-s11/grid*/r-*), the warm-up's growth
            // plus the freed staging was 468–652 MiB, against 0–256 MiB of staging, so the peak holds the warm-up's need
            // whatever the staging was. The CPU device, not measured so, still prices it.
            if (!gpu)
                Add("initial values copy", Bytes.OfElements(StagingElements(m), 4), "start-up: one CPU tensor every unit is staged through, fp32, the largest unit or a slice of it",
                    "none (start-up, bounded)");
        }
        else if (!scratch)
        {
            // StoreAll without gradient sums to make them in: one reused whole-unit array per worker, the outer block's its own.
            long layers = Math.Min(initWorkers, m.NumLayers);
            Add("initial values in flight", Bytes.OfElements(layers * m.LayerParameters + OuterElements(m), 4),
                $"start-up: {layers} worker array(s) of one layer and the outer block's, fp32, kept by the managed heap",
                gradients == OffloadTier.Nvme ? "--offload-gradients cpu" : "none (start-up, bounded)");
        }
        if (OffloadsCheckpoints(s))
        {
            long tokens = (long)s.MicroBatch * s.SeqLen;
            Add("activation checkpoints", Aligned(PerTokens(EngineActivations.LayerInputBytesPerToken(m, s), tokens)) * m.NumLayers,
                $"every layer's input between its forward and its recompute{(gpu ? ", page-locked" : "")}", "--offload-activations none or --micro-batch", pinned: gpu);
        }
        if (!gpu)
            // No device budget on a CPU: the head is the forced one, or the fused one where it lowers the bytes (EngineHeadLoss.Choose).
            foreach (MemoryItem d in DeviceItems(m, s, EngineHeadLoss.IsFused(s.HeadLoss, (long)s.MicroBatch * s.SeqLen, m.VocabSize, m.HiddenSize, s.Precision), gpu: false, out _))
                Add("device: " + d.Name, d.Bytes, d.Note ?? "", resident ? "--offload-params nvme" : "--micro-batch or --seq-len");
        Add("runtime baseline", gpu ? GpuRuntimeBaseline : CpuRuntimeBaseline, gpu ? ".NET and libtorch with CUDA (fitted, see docs/memory-model.md)" : ".NET and CPU libtorch (measured, see docs/memory-model.md)", "none (fixed per process)");
        // The residual scales with the model only where per-parameter state is in RAM; with everything on NVMe the host holds buffers alone.
        // It was fitted to a CPU run, where autograd's graph and temporaries live in RAM beside the named items; on a GPU the
        // measured runs hold no residual (gpt2-xl, the 3B shape, llama-2-7b and -13b: the named items alone plan 3–8% above
        // their peak RSS), so a GPU run plans none.
        bool perParameterInRam = s.ParamOffload != OffloadTier.Nvme || s.OptimizerOffload != OffloadTier.Nvme || gradients == OffloadTier.Cpu;
        if (perParameterInRam && !gpu)
            Add("unattributed", new Bytes((long)(p * UnattributedHostBytesPerParameter)), "managed heap and C heap beyond the named buffers (fitted; see docs/memory-model.md)", "none");
        return items;
    }

    /// <summary>
    /// Page-locked host copies of whole modules in <paramref name="elementBytes"/>-byte values, one per layer module and one for the
    /// outer block: PyTorch's pinned allocator serves each as a power-of-two block, and the pageable tensor each was pinned
    /// from stays in the C heap (Engine HostHeap keeps freed blocks), one of each size.
    /// </summary>
    private static Bytes PinnedPerModule(ModelSpec m, int elementBytes, long layerModules)
    {
        Bytes layer = Bytes.OfElements(m.LayerParameters, elementBytes), outer = Bytes.OfElements(OuterElements(m), elementBytes);
        return PowerOfTwo(layer) * layerModules + PowerOfTwo(outer) + (layerModules > 0 ? layer : Bytes.Zero) + outer;
    }

    /// <summary>The power of two at or above <paramref name="bytes"/> (the block of a pooled or pinned allocation).</summary>
    private static Bytes PowerOfTwo(Bytes bytes) => bytes.Value <= 1 ? new Bytes(1) : new Bytes(1L << (64 - System.Numerics.BitOperations.LeadingZeroCount((ulong)(bytes.Value - 1))));
}

using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Memory;

/// <summary>
/// Where each model state (parameters, gradients, optimizer states) and each swap buffer lives, per GPU
/// (device items) and per node (host and NVMe items). Bytes per parameter follow DeepSpeed: mixed precision
/// keeps 2-byte working parameters, a 4-byte fp32 gradient partition for the optimizer and 12 bytes of
/// optimizer state (fp32 master, Adam m and v); fp32 keeps 4 + 4 + 8.
/// </summary>
internal sealed partial class StateLayout
{
    public List<MemoryItem> Gpu { get; } = [];
    public List<MemoryItem> CpuPinned { get; } = [];
    public List<MemoryItem> CpuPageable { get; } = [];
    public List<MemoryItem> Nvme { get; } = [];
    /// <summary>PyTorch without ZeRO frees gradients between steps (<c>zero_grad(set_to_none=True)</c>).</summary>
    public bool GradientsFreedBetweenSteps { get; private set; }
    /// <summary>Autocast's low-precision copies of matmul weights, alive through forward (no-ZeRO mixed precision only).</summary>
    public Bytes AutocastCache { get; private set; }
    public Bytes ModelStatesGpu { get; private set; }
    public Bytes ModelStatesCpu { get; private set; }

    public static StateLayout For(ModelSpec m, HardwareProfile hw, TrainingSettings s)
    {
        var layout = new StateLayout();
        int gpusPerNode = Math.Max(1, s.GpusPerNode ?? hw.GpusPerNode);
        int nodes = Math.Max(1, s.Nodes ?? hw.Nodes);
        long gpus = (long)gpusPerNode * nodes;
        long p = m.TotalParameters;
        int pb = s.ParamBytes;
        int optimizerBytes = OptimizerStateBytes(s);
        const int gradPartitionBytes = 4;

        if (s.ZeroStage == ZeroStage.None)
            layout.PlainDataParallel(m, s, p);
        else
            layout.Zero(m, s, p, gpus, gpusPerNode, pb, optimizerBytes, gradPartitionBytes);

        layout.AddOffloadedCheckpoints(m, s, gpusPerNode);
        layout.CpuPageable.Add(new MemoryItem("process baseline", MemoryPlanner.ProcessBaseline * gpusPerNode,
            "runtime, CUDA host state and data loading, per training process (estimate)"));
        return layout;
    }

    /// <summary>No ZeRO: PyTorch keeps fp32 parameters, fp32 gradients and Adam's two fp32 moments on each GPU.</summary>
    private void PlainDataParallel(ModelSpec m, TrainingSettings s, long p)
    {
        Gpu.Add(new MemoryItem("parameters", Bytes.OfElements(p, 4), "fp32"));
        Gpu.Add(new MemoryItem("gradients", Bytes.OfElements(p, 4), "fp32, freed between steps"));
        Gpu.Add(new MemoryItem("optimizer states", Bytes.OfElements(p, 8), "Adam m and v, fp32"));
        GradientsFreedBetweenSteps = true;
        if (s.IsMixedPrecision)
        {
            AutocastCache = AutocastCacheOf(m);
        }
        ModelStatesGpu = Bytes.OfElements(p, 16);
    }

    private void Zero(ModelSpec m, TrainingSettings s, long p, long gpus, int gpusPerNode, int pb, int optimizerBytes, int gradPartitionBytes)
    {
        long partition = CeilDiv(p, gpus);          // elements each GPU owns
        long nodeShare = partition * gpusPerNode;   // elements a node owns
        Bytes statesGpu = Bytes.Zero, statesCpu = Bytes.Zero;
        ParameterWorkingSet? workingSet = null;

        // Parameters: whole on every GPU below stage 3; partitioned (and offloadable) from stage 3 on.
        if (s.PartitionsParameters)
        {
            Place(s.ParamOffload, "parameters", Bytes.OfElements(partition, pb), Bytes.OfElements(nodeShare, pb), s.PinMemory,
                $"{pb}-byte partition, 1/{gpus} of the model per GPU", ref statesGpu, ref statesCpu);
            // DeepSpeed gathers, prefetches and buckets module by module (ParameterWorkingSet), never whole blocks.
            workingSet = ParameterWorkingSet.For(m, s);
            AddWorkingSet(m, s, workingSet, pb, ref statesGpu);
        }
        else
        {
            Gpu.Add(new MemoryItem("parameters", Bytes.OfElements(p, pb), $"{pb}-byte working copy, whole model"));
            statesGpu += Bytes.OfElements(p, pb);
        }

        // Gradients: ZeRO-1 keeps a whole low-precision gradient buffer on the GPU unless the optimizer is offloaded;
        // ZeRO-2 reduce-scatters into this GPU's partition (DeepSpeed's estimator: 2 of its 18 partitioned bytes).
        if (s.ZeroStage == ZeroStage.Zero1 && s.OptimizerOffload == OffloadTier.None)
        {
            Gpu.Add(new MemoryItem("gradients", Bytes.OfElements(p, pb), "whole-model gradient buffer"));
            statesGpu += Bytes.OfElements(p, pb);
        }
        else if (s.ZeroStage == ZeroStage.Zero2 && s.OptimizerOffload == OffloadTier.None)
        {
            Gpu.Add(new MemoryItem("gradients", Bytes.OfElements(partition, pb), $"{pb}-byte gradient partition, 1/{gpus} of the model per GPU"));
            statesGpu += Bytes.OfElements(partition, pb);
            // The reduce-scatter still stages whole gradients in buckets before they reach the partition (not a model state).
            Gpu.Add(new MemoryItem("gradient buckets", Bytes.OfElements(LargestUnitGradients(m), pb) * 3,
                "gradients of up to three layers: the one being written and two being reduce-scattered"));
        }
        else if (workingSet is { } ws)
        {
            Gpu.Add(new MemoryItem("gradient buckets", Bytes.OfElements(ws.GradientBuckets, pb),
                "gradients of up to three modules: the one being written and two waiting to leave the GPU"));
        }
        else
        {
            Gpu.Add(new MemoryItem("gradient buckets", Bytes.OfElements(LargestUnitGradients(m), pb) * 3,
                "gradients of up to three layers: the one being written and two waiting to leave the GPU"));
        }
        Place(s.EffectiveGradientOffload, "gradient partition", Bytes.OfElements(partition, gradPartitionBytes),
            Bytes.OfElements(nodeShare, gradPartitionBytes), s.PinMemory, "fp32, read by the optimizer", ref statesGpu, ref statesCpu);

        string moments = s.OptimizerState == OptimizerStateFormat.EightBit ? "Adam m and v block-wise 8-bit" : "Adam m and v";
        Place(s.OptimizerOffload, "optimizer states", OptimizerState(s, partition), OptimizerState(s, nodeShare),
            s.PinMemory, s.IsMixedPrecision ? $"fp32 master weights, {moments}" : $"{moments}, fp32 parameters", ref statesGpu, ref statesCpu);

        // Swap buffers: DeepSpeed's aio reads and writes only pinned buffers.
        if (s.ParamOffload == OffloadTier.Nvme)
        {
            CpuPinned.Add(new MemoryItem("parameter swap buffers", Bytes.OfElements(s.BufferSize, pb) * ((long)s.BufferCount * gpusPerNode),
                $"buffer_count {s.BufferCount} × buffer_size {s.BufferSize:N0} elements × {pb} B, per process"));
        }
        if (s.OptimizerOffload == OffloadTier.Nvme)
        {
            long subGroup = Math.Min(s.SubGroupSize, partition);
            CpuPinned.Add(new MemoryItem("optimizer swap buffers", Bytes.OfElements(subGroup, 4) * ((long)s.OptimizerBufferCount * gpusPerNode),
                $"buffer_count {s.OptimizerBufferCount} × sub-group {subGroup:N0} elements × 4 B, per process"));
        }
        ModelStatesGpu = statesGpu;
        ModelStatesCpu = statesCpu;
    }

    /// <summary>Puts one partitioned state in its tier: the GPU share per GPU, the node share on host or NVMe.</summary>
    private void Place(OffloadTier tier, string name, Bytes perGpu, Bytes perNode, bool pin, string note, ref Bytes statesGpu, ref Bytes statesCpu)
    {
        switch (tier)
        {
            case OffloadTier.None:
                Gpu.Add(new MemoryItem(name, perGpu, note));
                statesGpu += perGpu;
                break;
            case OffloadTier.Cpu:
                (pin ? CpuPinned : CpuPageable).Add(new MemoryItem(name, perNode, note));
                statesCpu += perNode;
                break;
            case OffloadTier.Nvme:
                Nvme.Add(new MemoryItem(name, perNode, note));
                break;
        }
    }

    /// <summary>Optimizer state per parameter: fp32 master weights and Adam's m and v in mixed precision, m and v in fp32.</summary>
    public static int OptimizerStateBytes(TrainingSettings s) => s.IsMixedPrecision ? 12 : 8;

    /// <summary>
    /// Optimizer state of <paramref name="elements"/> parameters in the settings' format: fp32 master (mixed precision
    /// only) and both moments, 8-bit moments with their per-block fp32 scales (about half the fp32 bytes).
    /// </summary>
    public static Bytes OptimizerState(TrainingSettings s, long elements) => s.OptimizerState == OptimizerStateFormat.Fp32
        ? Bytes.OfElements(elements, OptimizerStateBytes(s))
        : s.OptimizerState.MomentBytes(elements) * 2 + (s.IsMixedPrecision ? Bytes.OfElements(elements, 4) : Bytes.Zero);

    /// <summary>Autocast's 2-byte copies of every matmul weight (layers and the output matrix).</summary>
    public static Bytes AutocastCacheOf(ModelSpec m) =>
        Bytes.OfElements(m.NumLayers * m.LayerMatmulParameters + (long)m.VocabSize * m.HiddenSize, 2);

    /// <summary>The most gradient elements one unit (embedding, layer or head) produces at once.</summary>
    public static long LargestUnitGradients(ModelSpec m) => Math.Max(m.LayerParameters, Math.Max(m.EmbeddingParameters, m.HeadParameters));

    private static long CeilDiv(long a, long b) => (a + b - 1) / b;
}

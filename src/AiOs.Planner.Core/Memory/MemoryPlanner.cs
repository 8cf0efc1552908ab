using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Memory;

/// <summary>
/// Closed-form peak memory per tier for one model, machine and settings. Model states follow DeepSpeed's
/// accounting (so they agree with its estimators); activations, loss buffers, swap buffers and NVMe space
/// go beyond them. See docs/memory-model.md for every formula and its source.
/// </summary>
public static class MemoryPlanner
{
    /// <summary>CUDA context plus caching-allocator slack: a fixed part and a share of the allocated peak.</summary>
    public static readonly Bytes CudaContext = Bytes.FromMiB(768);
    public const double AllocatorSlack = 0.05;
    /// <summary>Host RAM of one training process that is not model state (runtime, CUDA host side, data loading).</summary>
    public static readonly Bytes ProcessBaseline = Bytes.FromGiB(2);

    public static MemoryPlan Plan(ModelSpec model, HardwareProfile hardware, TrainingSettings s)
    {
        var layout = StateLayout.For(model, hardware, s);
        var device = DevicePeak(model, s, layout, out string phase);
        Bytes ram = hardware.Cpu.Ram;
        Bytes pinned = Sum(layout.CpuPinned);
        var pageable = new List<MemoryItem>(layout.CpuPageable);
        List<MemoryItem> gpuItems = [];
        Bytes reserve = Bytes.Zero;
        if (hardware.HasGpu)
        {
            gpuItems.AddRange(device);
            reserve = CudaContext + Sum(device) * AllocatorSlack;
            gpuItems.Add(new MemoryItem("framework reserve", reserve, "CUDA context and allocator slack (not in max_memory_allocated)"));
        }
        else
        {
            // On a CPU-only machine the compute device is the CPU: its working set is host RAM.
            pageable.AddRange(device.Select(i => i with { Name = "device: " + i.Name }));
        }
        Bytes left = ram - pinned;
        return new MemoryPlan
        {
            Gpu = new TierUse(MemoryTier.Gpu, gpuItems, hardware.HasGpu ? hardware.Gpu!.Memory : Bytes.Zero),
            GpuPeakPhase = phase,
            GpuReserve = reserve,
            CpuPinned = new TierUse(MemoryTier.CpuPinned, layout.CpuPinned, ram),
            CpuPageable = new TierUse(MemoryTier.CpuPageable, pageable, left.Value > 0 ? left : Bytes.Zero),
            Nvme = new TierUse(MemoryTier.Nvme, layout.Nvme, hardware.Drives.Aggregate(Bytes.Zero, (sum, d) => sum + d.Capacity)),
            ModelStatesGpu = layout.ModelStatesGpu,
            ModelStatesCpu = layout.ModelStatesCpu,
        };
    }

    /// <summary>
    /// The device peak is the larger of two moments: the end of the forward pass (all activations and the loss
    /// buffers alive; with no ZeRO, PyTorch's gradients are freed between steps) and the end of the backward
    /// pass (every gradient written, and the first layer's activations alive while its gradients are computed:
    /// recomputed under checkpointing, stored otherwise).
    /// </summary>
    private static List<MemoryItem> DevicePeak(ModelSpec m, TrainingSettings s, StateLayout layout, out string phase)
    {
        long tokens = (long)s.MicroBatch * s.SeqLen;
        Bytes layerActivations = PerTokens(ActivationModel.LayerBytesPerToken(m, s), tokens);
        Bytes stored = s.ActivationCheckpointing
            ? PerTokens(ActivationModel.CheckpointBytesPerToken(m, s), tokens) * m.NumLayers
            : layerActivations * m.NumLayers;
        Bytes head = PerTokens(ActivationModel.HeadBytesPerToken(m, s), tokens);

        var forwardStates = layout.Gpu.Where(i => !(i.Name == "gradients" && layout.GradientsFreedBetweenSteps)).ToList();
        Bytes forwardEnd = Sum(forwardStates) + layout.AutocastCache + stored + head;
        Bytes backwardEnd = Sum(layout.Gpu) + layerActivations;

        var items = new List<MemoryItem>();
        if (forwardEnd >= backwardEnd)
        {
            phase = "end of forward";
            items.AddRange(forwardStates);
            if (layout.AutocastCache.Value > 0)
                items.Add(new MemoryItem("autocast weight cache", layout.AutocastCache, "low-precision copies of matmul weights, kept through forward"));
            items.Add(new MemoryItem("activations", stored, s.ActivationCheckpointing ? "layer inputs only (checkpointing)" : "every layer, no checkpointing"));
            items.Add(new MemoryItem("logits and loss", head, "embedding output, final norm, logits, fp32 upcast, log-softmax"));
        }
        else
        {
            phase = "end of backward";
            items.AddRange(layout.Gpu);
            items.Add(new MemoryItem("activations", layerActivations,
                s.ActivationCheckpointing ? "the first layer, recomputed under checkpointing" : "the first layer's, freed last"));
        }
        return items;
    }

    private static Bytes PerTokens(double bytesPerToken, long tokens) => new((long)Math.Ceiling(bytesPerToken * tokens));

    private static Bytes Sum(IEnumerable<MemoryItem> items) => items.Aggregate(Bytes.Zero, (sum, i) => sum + i.Bytes);
}

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

    /// <summary>The peak per tier of the program <paramref name="s"/> names: the bundled engine's (<see cref="EngineMemory"/>) or DeepSpeed's.</summary>
    public static MemoryPlan Plan(ModelSpec model, HardwareProfile hardware, TrainingSettings s) =>
        s.Executor == ExecutorKind.Aios ? EngineMemory.Plan(model, hardware, s) : PlanDeepSpeed(model, hardware, s);

    /// <summary>DeepSpeed with PyTorch eager: model states as DeepSpeed's estimators count them, activations as PyTorch keeps them.</summary>
    public static MemoryPlan PlanDeepSpeed(ModelSpec model, HardwareProfile hardware, TrainingSettings s)
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
    /// The device peak is the largest of three moments: the end of the forward pass (all activations and the
    /// loss buffers alive; with no ZeRO, PyTorch's gradients are freed between steps), the start of backward
    /// under checkpointing (every layer input plus the last layer's recomputed activations), and the end of
    /// backward (every gradient written, and the first layer's activations alive while its gradients are
    /// computed: recomputed under checkpointing, stored otherwise).
    /// </summary>
    private static List<MemoryItem> DevicePeak(ModelSpec m, TrainingSettings s, StateLayout layout, out string phase)
    {
        long tokens = (long)s.MicroBatch * s.SeqLen;
        Bytes layerActivations = PerTokens(ActivationModel.LayerBytesPerToken(m, s), tokens);
        Bytes stored = s.ActivationCheckpointing
            ? PerTokens(ActivationModel.CheckpointBytesPerToken(m, s), tokens) * ActivationModel.CheckpointLayersOnDevice(m, s)
            : layerActivations * m.NumLayers;
        Bytes head = PerTokens(ActivationModel.HeadBytesPerToken(m, s), tokens);
        // Gradients freed between steps are absent from the forward pass of the first micro-batch only.
        bool noGradientsInForward = layout.GradientsFreedBetweenSteps && s.GradAccumulation == 1;
        var forwardStates = layout.Gpu.Where(i => !(i.Name == "gradients" && noGradientsInForward)).ToList();
        string storedNote = !s.ActivationCheckpointing ? "every layer, no checkpointing"
            : s.ActivationOffload == OffloadTier.Cpu ? "two layer inputs in flight; the rest in CPU RAM (cpu_checkpointing)" : "layer inputs only (checkpointing)";

        var forwardEnd = new List<MemoryItem>(forwardStates);
        if (layout.AutocastCache.Value > 0)
            forwardEnd.Add(new MemoryItem("autocast weight cache", layout.AutocastCache, "low-precision copies of matmul weights, kept through forward"));
        forwardEnd.Add(new MemoryItem("activations", stored, storedNote));
        forwardEnd.Add(new MemoryItem("logits and loss", head, "embedding output, final norm, logits, fp32 upcast, log-softmax"));

        var candidates = new List<(string Phase, List<MemoryItem> Items)> { ("end of forward", forwardEnd) };
        if (s.ActivationCheckpointing)
        {
            var backwardStart = new List<MemoryItem>(forwardStates)
            {
                new("activations", stored, storedNote),
                new("recomputed layer activations", layerActivations, "the last layer, recomputed"),
            };
            AddBackwardTransient(m, s, backwardStart);
            candidates.Add(("start of backward", backwardStart));
        }
        if (layout.GradientsFreedBetweenSteps) candidates.Add(WorstBackwardMoment(m, s, forwardStates, layerActivations, noGradientsInForward));
        var backwardEnd = new List<MemoryItem>(layout.Gpu)
        {
            new("activations", layerActivations, s.ActivationCheckpointing ? "the first layer, recomputed under checkpointing" : "the first layer's, freed last"),
        };
        AddBackwardTransient(m, s, backwardEnd);
        candidates.Add(("end of backward", backwardEnd));

        var peak = candidates[0];
        foreach (var c in candidates.Skip(1))
            if (Sum(c.Items) > Sum(peak.Items)) peak = c;
        phase = peak.Phase;
        return peak.Items;
    }

    /// <summary>
    /// Without ZeRO, gradients appear layer by layer during backward while layer inputs are freed: the worst
    /// moment is found by walking backward layer by layer (the head's gradients first, then each layer's).
    /// </summary>
    private static (string Phase, List<MemoryItem> Items) WorstBackwardMoment(ModelSpec m, TrainingSettings s, List<MemoryItem> forwardStates,
        Bytes layerActivations, bool noGradientsInForward)
    {
        long tokens = (long)s.MicroBatch * s.SeqLen;
        Bytes perLayer = s.ActivationCheckpointing ? PerTokens(ActivationModel.CheckpointBytesPerToken(m, s), tokens) : layerActivations;
        Bytes layerGradients = Bytes.OfElements(m.LayerParameters, 4);
        Bytes total = Bytes.OfElements(m.TotalParameters, 4);
        Bytes written = noGradientsInForward ? Bytes.OfElements(m.HeadParameters, 4) : total;
        Bytes recompute = s.ActivationCheckpointing ? layerActivations : Bytes.Zero;
        (Bytes Level, Bytes Gradients, int Remaining, bool Recomputing) worst = (Bytes.Zero, written, m.NumLayers, false);
        for (int k = m.NumLayers - 1; k >= 0; k--)
        {
            Bytes whileRecomputing = written + perLayer * (k + 1) + recompute;
            if (whileRecomputing > worst.Level) worst = (whileRecomputing, written, k + 1, true);
            if (noGradientsInForward) written += layerGradients;
            Bytes afterLayer = written + perLayer * k;
            if (afterLayer > worst.Level) worst = (afterLayer, written, k, false);
        }
        var items = new List<MemoryItem>(forwardStates)
        {
            new("gradients", worst.Gradients, "fp32, written so far in backward"),
            new("activations", perLayer * worst.Remaining, $"inputs of the {worst.Remaining} layers still to go"),
        };
        if (worst.Recomputing) items.Add(new MemoryItem("recomputed layer activations", recompute, "the layer being recomputed"));
        return ("during backward", items);
    }

    /// <summary>The score-sized matrices a layer's recompute or backward holds beyond its stored activations (eager attention; none with a fused kernel).</summary>
    private static void AddBackwardTransient(ModelSpec m, TrainingSettings s, List<MemoryItem> items)
    {
        Bytes transient = PerTokens(ActivationModel.BackwardTransientBytesPerToken(m, s), (long)s.MicroBatch * s.SeqLen);
        if (transient.Value > 0)
            items.Add(new MemoryItem("attention score matrices in flight", transient,
                "eager attention: the causal mask's backward (CopySlices) holds four score matrices at once, beyond the kept ones it replaces"));
    }

    private static Bytes PerTokens(double bytesPerToken, long tokens) => new((long)Math.Ceiling(bytesPerToken * tokens));

    private static Bytes Sum(IEnumerable<MemoryItem> items) => items.Aggregate(Bytes.Zero, (sum, i) => sum + i.Bytes);
}

using AiOs.Planner.Hardware;
using AiOs.Planner.Learning;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Units;

namespace AiOs.Planner.Planning;

/// <summary>What a plan computes beyond memory.</summary>
public sealed record PlanOptions
{
    /// <summary>Simulate a step (time, bottleneck, traffic); off for memory-only planning.</summary>
    public bool Simulate { get; init; } = true;
    /// <summary>Keep every span and memory level for a timeline.</summary>
    public bool KeepTimeline { get; init; }
    /// <summary>Also simulate the first step (no prefetch trace yet).</summary>
    public bool FirstStep { get; init; }
    public ComputeModel? ComputeModel { get; init; }
    /// <summary>Evaluates the profile's learned correction (from the Calibration library); null leaves it unused, and the plan says so.</summary>
    public IStepCorrection? Correction { get; init; }

    public static PlanOptions Default { get; } = new();
}

/// <summary>Checks settings and memory for a model on a machine, and says what to change when they do not fit.</summary>
public static class TrainingPlanner
{
    /// <summary>Host RAM that page-locked memory may take before the OS starves (pinning all RAM hangs machines).</summary>
    public const double PinnedRamLimit = 0.8;

    /// <summary>Checks the settings, plans memory and, when the settings are valid, simulates a step.</summary>
    public static PlanResult Plan(ModelSpec model, HardwareProfile hardware, TrainingSettings settings, PlanOptions? options = null)
    {
        options ??= PlanOptions.Default;
        var settingsProblems = SettingsRules.Check(settings, model, hardware);
        var memory = MemoryPlanner.Plan(model, hardware, settings);
        var capacity = CapacityProblems(model, memory, settings, hardware);
        StepResult? step = null, first = null;
        if (options.Simulate && settingsProblems.Count == 0 && !(settings.UsesNvme && hardware.Drives.Count == 0))
        {
            try
            {
                step = Simulator.Predict(model, hardware, settings, options.KeepTimeline, firstStep: false, options.ComputeModel);
                if (options.FirstStep) first = Simulator.Predict(model, hardware, settings, keepTimeline: false, firstStep: true, options.ComputeModel);
            }
            catch (OverflowException)
            {
                // Simulated time is checked 64-bit nanoseconds: within the description bounds, only a step of more than
                // 292 years (quadratic attention over millions of tokens on a slow CPU, say) gets here. That is an answer, not a crash.
                (step, first) = (null, null);
                capacity.Add($"Time: one step would take longer than the simulator counts (292 years) on {hardware.Name}. Lower --seq-len or --micro-batch, or plan for faster hardware.");
            }
        }
        // The CUDA-graphs note compares two simulated steps, before any learned correction.
        StepResult? simulated = step;
        CorrectionOutcome? correction = null;
        if (step is not null && hardware.Correction is not null)
        {
            // Only the steady step is corrected: the history's labels are means of the steps after the first.
            (step, correction) = StepCorrector.Correct(step, model, settings, hardware, options.Correction);
        }
        return new PlanResult
        {
            Model = model,
            Hardware = hardware,
            // The engine's head as the memory plan and the step program resolved it for this card (auto → fused or unfused; the
            // memory item's note says why): what the plan shows and `aios train` hands the engine.
            Settings = settings.Executor == ExecutorKind.Aios ? EngineHeadLoss.Resolved(model, hardware, settings) : settings,
            Memory = memory,
            SettingsProblems = settingsProblems,
            CapacityProblems = capacity,
            Step = step,
            FirstStep = first,
            Correction = correction,
            Notes = options.Simulate && options.ComputeModel is null
                ? new[]
                {
                    EngineFloorsNote(model, hardware, settings), EngineWorkNote(model, hardware, settings), EngineMatmulNote(model, hardware, settings),
                    GraphWorkNote(model, hardware, settings), CudaGraphsNote(model, hardware, settings, simulated, memory),
                }.OfType<string>().ToList()
                : [],
        };
    }

    /// <summary>
    /// A note when <paramref name="step"/> (simulated, before a learned correction) is launch-bound and <c>--cuda-graphs</c> would shorten it by at least
    /// <see cref="CudaGraphsNoteGain"/> on a card it still fits: the <c>aios</c> executor, resident on one GPU, graphs not asked for
    /// and allowed (<see cref="CudaGraphRule"/>). It gives the step with the graphs and the device memory they add; null otherwise.
    /// </summary>
    public static string? CudaGraphsNote(ModelSpec model, HardwareProfile hardware, TrainingSettings settings, StepResult? step, MemoryPlan memory)
    {
        if (step is null || !hardware.HasGpu || settings.CudaGraphs || settings.Executor != ExecutorKind.Aios) return null;
        if (Simulation.Program.Topology.Of(settings, hardware).Ranks > 1) return null;
        var graphs = settings with { CudaGraphs = true };
        if (CudaGraphRule.Problem(graphs) is not null) return null;
        var replayed = Simulator.Predict(model, hardware, graphs, keepTimeline: false, firstStep: false);
        if (replayed.Time.Seconds > step.Time.Seconds * (1 - CudaGraphsNoteGain)) return null;
        var withGraphs = MemoryPlanner.Plan(model, hardware, graphs);
        if (!withGraphs.Gpu.Fits) return null;
        return $"The step is launch-bound: the host dispatches the layers' kernels more slowly than the GPU runs them. With --cuda-graphs " +
               $"(each layer's forward and backward replayed from a CUDA graph, the same math) it plans at {replayed.Time.Seconds * 1e3:F1} ms " +
               $"instead of {step.Time.Seconds * 1e3:F1} ms, for {withGraphs.Gpu.Peak - memory.Gpu.Peak} more device memory.";
    }

    /// <summary>The least share of the step <see cref="CudaGraphsNote"/> must save before it speaks: below it the graphs' memory is not worth mentioning.</summary>
    public const double CudaGraphsNoteGain = 0.05;

    /// <summary>
    /// A note when the <c>aios</c> executor runs on a GPU whose engine kernels have no dispatch floors for
    /// <paramref name="model"/>'s layer kind (<see cref="EngineLayerKind"/>): its launch-bound steps are then priced with
    /// another kind's floors (measured on a CPU, a Llama layer's floors are 30–90% above GPT-2's); null otherwise.
    /// </summary>
    public static string? EngineFloorsNote(ModelSpec model, HardwareProfile hardware, TrainingSettings settings)
    {
        if (!hardware.HasGpu || settings.Executor != ExecutorKind.Aios || hardware.Gpu!.EngineKernels is not { } kernels) return null;
        var floors = kernels.FloorsFor(model);
        if (floors.Measured) return null;
        return $"{hardware.Name}'s engine dispatch floors were measured on {kernels.MainFloorKind} layers, not on {model.Name}'s ({floors.Kind}), " +
               "which launch a different number of kernels: a launch-bound step (small micro-batch) is priced with the other kind's floors. " +
               $"Measure them: aios calibrate-gpu --family {model.Name} (or --floor-families {model.Name} to add them beside the main fit).";
    }

    /// <summary>
    /// A note when the <c>aios</c> executor runs on a GPU whose engine kernels' layer-work fit (matmul efficiency, element-wise
    /// rate, backward work) was measured on another layer kind than <paramref name="model"/>'s: its norms, position encoding and
    /// MLP are then priced through that kind's fit. Out of sample on an H100 VM (2026-12-06), a Llama-3.2-1B shape's
    /// work-bound steps ran 17–19% slower than a gpt2-kind fit priced them (docs/validation/gpu-2026-12-06-session17.md);
    /// null otherwise, and null where the profile has the kind's work ratios (<see cref="LayerKindFloors.ForwardWorkRatio"/>) and
    /// neither is marked an estimate (the bundled profiles carry estimates read off another machine's steps: the note says so).
    /// </summary>
    public static string? EngineWorkNote(ModelSpec model, HardwareProfile hardware, TrainingSettings settings)
    {
        if (!hardware.HasGpu || settings.Executor != ExecutorKind.Aios || hardware.Gpu!.EngineKernels is not { } kernels) return null;
        string kind = EngineLayerKind.Of(model);
        if (kind == kernels.MainFloorKind) return null;
        string measure = $"Measure it: aios calibrate-gpu --floor-families {model.Name} (the kind's work beside the main fit) or --family {model.Name}.";
        if (kernels.KindFloors?.FirstOrDefault(f => f.Kind == kind) is { ForwardWorkRatio: { } forward, BackwardWorkRatio: { } backward })
        {
            static bool Estimated(Figure f) => f.Provenance?.Source == FigureSource.Estimate;
            if (!Estimated(forward) && !Estimated(backward)) return null;
            return $"{hardware.Name}'s engine layer-work fit was measured on {kernels.MainFloorKind} layers, not on {model.Name}'s ({kind}); " +
                   $"that kind's work-bound passes are priced at estimated ratios to it (forward ×{forward.Value:0.00}, backward ×{backward.Value:0.00}, " +
                   "read off another machine's steps; see the profile's kind_floors). " + measure;
        }
        return $"{hardware.Name}'s engine layer-work fit was measured on {kernels.MainFloorKind} layers, not on {model.Name}'s ({kind}), and has no measured work ratios for that kind (forward and backward): " +
               "its element-wise work is priced through the other kind's fit, which planned a Llama shape's work-bound steps 17–19% fast on an H100 VM. " + measure;
    }

    /// <summary>
    /// Why a plan with <c>--cuda-graphs</c> may price its replayed layers long: the profile has no <see cref="EngineKernels.GraphWork"/>
    /// for the model's layer kind, so they are priced as eager passes, whose fixed term holds host time a replay does not have
    /// (gpt2-xl at micro-batch 1 on an H100 VM, 2026-12-07: 61.2 ms planned, 54.6 measured). Null where the layers do not replay
    /// or the profile measured their replays.
    /// </summary>
    public static string? GraphWorkNote(ModelSpec model, HardwareProfile hardware, TrainingSettings settings)
    {
        if (!hardware.HasGpu || !CudaGraphRule.Replays(settings) || hardware.Gpu!.EngineKernels is not { } kernels) return null;
        if (kernels.GraphWork is { } g && g.Prices(model)) return null;
        string why = kernels.GraphWork is null ? $"{hardware.Name} has no measured replays"
            : $"{hardware.Name}'s replays were measured on another layer kind ({kernels.GraphWork.Kind ?? EngineLayerKind.Gpt2}) than {model.Name}'s";
        return $"--cuda-graphs: {why} (engine_kernels.graph_work), so the replayed layers are priced as eager passes, whose fixed term holds host " +
               "time a replay does not have; at small micro-batches the step may run up to a sixth faster than planned. Measure them: aios calibrate-gpu" +
               (kernels.GraphWork is null ? "" : $" --family {model.Name} (which fits the kernels to that kind in place of {kernels.GraphWork.Kind ?? EngineLayerKind.Gpt2}'s)") + ".";
    }

    /// <summary>
    /// A note when the <c>aios</c> executor prices an fp32 run on a GPU whose engine kernels carry no per-shape matmul rates
    /// (<see cref="EngineKernels.LayerMatmul"/>) and whose layer fit was not taken in fp32: its layers' products are then priced
    /// at the large-matmul fp32 rate with an efficiency fitted on another precision's layers, and on H100 VMs fp32 layers'
    /// products ran at 0.72–0.95 of that rate (fp32 resident rows planned 10–16% fast, docs/validation/gpu-2026-12-07-session22.md).
    /// A layer kind other than the fit's, priced by whole work ratios alone (no element-wise ratios), is named too: a whole ratio
    /// measured in bf16 also scales an fp32 layer's matmuls. Null otherwise.
    /// </summary>
    public static string? EngineMatmulNote(ModelSpec model, HardwareProfile hardware, TrainingSettings settings)
    {
        if (!hardware.HasGpu || settings.Executor != ExecutorKind.Aios || settings.Precision != Precision.Fp32
            || hardware.Gpu!.EngineKernels is not { } kernels) return null;
        bool fittedInFp32 = kernels.MatmulEfficiency.Provenance?.Method?.Contains(", fp32,", StringComparison.Ordinal) == true;
        var work = kernels.WorkRatiosFor(model);
        bool wholeKindRatio = (work.Forward != 1 || work.Backward != 1) && work.ForwardElementwise is null;
        var parts = new List<string>();
        if (kernels.LayerMatmul is null && !fittedInFp32)
            parts.Add("its layers' products are priced at the large-matmul fp32 rate with an efficiency fitted on another precision's layers (fp32 layers' products ran at 0.72–0.95 of that rate on H100 VMs, and such plans came out 10–16% fast)");
        if (wholeKindRatio && !fittedInFp32)
            parts.Add($"{model.Name}'s layer kind is priced by whole work ratios measured in another precision, which scale fp32 matmuls too (no element-wise ratios)");
        if (parts.Count == 0) return null;
        return $"fp32 on {hardware.Name}: {string.Join("; ", parts)}. Measure them: aios calibrate-gpu (it times the layer products per shape in both precisions" +
               (wholeKindRatio ? $", and with --floor-families {model.Name} the kind's element-wise ratios" : "") + ").";
    }

    private static List<string> CapacityProblems(ModelSpec model, MemoryPlan memory, TrainingSettings s, HardwareProfile hw)
    {
        var problems = new List<string>();
        if (hw.HasGpu && !memory.Gpu.Fits)
        {
            problems.Add($"GPU memory: needs {memory.Gpu.Peak} per GPU at the {memory.GpuPeakPhase}, the GPU has {memory.Gpu.Capacity}. " +
                         PlanAdvice.Text(PlanAdvice.Gpu(model, hw, s, memory),
                             "No setting left lowers GPU memory (parameters and optimizer are off the GPU): use a GPU with more memory."));
        }
        Bytes ram = hw.Cpu.Ram;
        if (memory.CpuPinned.Peak > ram * PinnedRamLimit)
        {
            problems.Add($"Pinned host memory: needs {memory.CpuPinned.Peak} per node, more than {PinnedRamLimit:P0} of {ram} RAM. " +
                         PlanAdvice.Text(PlanAdvice.Pinned(s), "Use smaller swap buffers (--buffer-size, --sub-group-size), or a machine with more RAM."));
        }
        if (memory.CpuPeak > ram)
        {
            problems.Add($"Host RAM: needs {memory.CpuPeak} per node, the node has {ram}. " +
                         (s.OptimizerOffload == OffloadTier.Cpu || s.ParamOffload == OffloadTier.Cpu
                             ? "Offload to NVMe instead of CPU (--nvme-offload-optimizer, --nvme-offload-params), or add nodes."
                             : "Reduce swap buffers or add nodes."));
        }
        if (memory.Nvme.Peak.Value > 0 && !memory.Nvme.Fits)
        {
            problems.Add(hw.Drives.Count == 0
                ? $"NVMe: needs {memory.Nvme.Peak} per node but {hw.Name} lists no drive. Add a drive to the profile or offload to CPU."
                : $"NVMe: needs {memory.Nvme.Peak} per node, the drives hold {memory.Nvme.Capacity}. Add drives or nodes.");
        }
        return problems;
    }
}

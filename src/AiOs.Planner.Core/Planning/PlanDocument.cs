using System.Text.Json;
using System.Text.Json.Nodes;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Memory;
using AiOs.Planner.Records;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Planning;

/// <summary>The <c>aios plan --json</c> document: a <see cref="PlanRecord"/> whose field names are a public contract.</summary>
public static class PlanDocument
{
    /// <summary>The settings of a plan document (its <c>settings</c> object), as <see cref="Build"/> wrote them.</summary>
    public static TrainingSettings ReadSettings(JsonNode settings) =>
        settings.Deserialize<TrainingSettings>(PlanRecordJson.Options) ?? throw new JsonException("the plan's settings are null");

    /// <summary>The <c>aios plan --json</c> document of <paramref name="plan"/>, as JSON.</summary>
    public static JsonObject Build(PlanResult plan) => JsonSerializer.SerializeToNode(Record(plan), PlanRecordJson.Options)!.AsObject();

    /// <summary>The typed <c>aios plan --json</c> document of <paramref name="plan"/>.</summary>
    public static PlanRecord Record(PlanResult plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var m = plan.Memory;
        var model = plan.Model;
        bool gpu = plan.Hardware.HasGpu;
        var step = plan.Step;
        return new PlanRecord
        {
            Model = new PlanModel(model.Name, model.TotalParameters, model.NumLayers, model.HiddenSize, model.LargestLayerParameters),
            Hardware = new PlanHardware(plan.Hardware.Name, plan.Nodes, plan.GpusPerNode, plan.Hardware.Gpu?.Model, plan.GpuMemoryLimit?.Value),
            Executor = ExecutorJsonConverter.Name(plan.Settings.Executor),
            Settings = plan.Settings,
            Feasible = plan.Feasible,
            Problems = plan.Problems.ToList(),
            Notes = plan.Notes,
            Memory = new PlanMemory
            {
                GpuPeakBytes = m.GpuAllocatedPeak.Value,
                GpuReservedPeakBytes = m.Gpu.Peak.Value,
                GpuCapacityBytes = m.Gpu.Capacity.Value,
                GpuPeakPhase = m.GpuPeakPhase,
                CpuPeakBytes = m.CpuPeak.Value,
                CpuPinnedBytes = m.CpuPinned.Peak.Value,
                CpuPageableBytes = m.CpuPageable.Peak.Value,
                CpuCapacityBytes = plan.Hardware.Cpu.Ram.Value,
                NvmeBytes = m.Nvme.Peak.Value,
                NvmeCapacityBytes = m.Nvme.Capacity.Value,
                ModelStatesGpuBytes = m.ModelStatesGpu.Value,
                ModelStatesCpuBytes = m.ModelStatesCpu.Value,
                Breakdown = new PlanBreakdown(Items(m.Gpu), Items(m.CpuPinned), Items(m.CpuPageable), Items(m.Nvme)),
                SimulatedPeaks = step is null ? null : new PlanSimulatedPeaks(step.MemoryPeaks[MemoryTier.Gpu].Value, step.MemoryPeaks[MemoryTier.CpuPinned].Value,
                    step.MemoryPeaks[MemoryTier.CpuPageable].Value, step.MemoryPeaks[MemoryTier.Nvme].Value),
            },
            DeepspeedEstimate = DeepSpeedEstimate(plan),
            Step = step is null ? null : new PlanStep
            {
                TimeS = step.Time.Seconds,
                FirstStepTimeS = plan.FirstStep?.Time.Seconds,
                TokensPerS = step.TokensPerSecond,
                ModelTflops = step.ModelTflopsPerGpu,
                Bottleneck = ResourceNames.Of(step.Bottleneck, gpu),
                Phases = new PlanPhases(step.Phases.Forward.Seconds, step.Phases.Backward.Seconds, step.Phases.Optimizer.Seconds),
                CriticalPathS = PerResource(step.CriticalPath.ToDictionary(kv => kv.Key, kv => kv.Value.Seconds), gpu),
                Operations = step.Operations,
                Correction = plan.Correction is { } c ? Correction(c) : null,
            },
            Traffic = step is null ? null : new PlanTraffic(step.Traffic.NvmeRead.Value, step.Traffic.NvmeWrite.Value, step.Traffic.H2d.Value,
                step.Traffic.D2h.Value, step.Traffic.Network.Value),
            Utilization = step is null ? null : PerResource(step.Busy.Keys.ToDictionary(k => k, step.Utilization), gpu),
            LowerBounds = StepBounds.Of(plan) is { Count: > 0 } bounds ? bounds.Select(b => new PlanLowerBound(b.Resource, b.Time.Seconds, b.Basis, b.Ratio)).ToList() : null,
        };
    }

    /// <summary>Whether the learned correction was applied, why not, and the simulator's own phases (what a history learns from).</summary>
    private static PlanCorrection Correction(Learning.CorrectionOutcome c) => new(c.Applied, c.Reason,
        new PlanPhaseRatios(c.Ratios.Forward, c.Ratios.Backward, c.Ratios.Optimizer),
        new PlanUncorrected(c.Uncorrected.Total, new PlanPhases(c.Uncorrected.Forward, c.Uncorrected.Backward, c.Uncorrected.Optimizer)));

    /// <summary>Values by resource name, in the order of <see cref="ResourceKind"/> (insertion order is the written order).</summary>
    private static Dictionary<string, double> PerResource(Dictionary<ResourceKind, double> values, bool gpu)
    {
        var o = new Dictionary<string, double>();
        foreach (var (k, v) in values.OrderBy(kv => kv.Key)) o[ResourceNames.Of(k, gpu)] = v;
        return o;
    }

    private static List<PlanMemoryItem> Items(TierUse tier) => tier.Items.Select(i => new PlanMemoryItem(i.Name, i.Bytes.Value, i.Note)).ToList();

    /// <summary>DeepSpeed's own estimator for the same stage and offload, where it has one.</summary>
    private static PlanDeepSpeedEstimate? DeepSpeedEstimate(PlanResult plan)
    {
        var s = plan.Settings;
        var model = plan.Model;
        int gpus = Math.Max(1, plan.GpusPerNode), nodes = plan.Nodes;
        bool optimizerOff = s.OptimizerOffload != OffloadTier.None;
        if (s.PartitionsParameters)
        {
            var e = DeepSpeedEstimators.Zero3(model.TotalParameters, DeepSpeed.DeepSpeedModules.LargestModuleParameters(model), gpus, nodes,
                cpuOffload: optimizerOff, cpuOffloadParams: s.ParamOffload != OffloadTier.None);
            return new PlanDeepSpeedEstimate("estimate_zero3_model_states_mem_needs", e.GpuBytes, e.CpuBytes);
        }
        if (s.ZeroStage == ZeroStage.Zero2)
        {
            var e = DeepSpeedEstimators.Zero2(model.TotalParameters, gpus, nodes, cpuOffload: optimizerOff);
            return new PlanDeepSpeedEstimate("estimate_zero2_model_states_mem_needs", e.GpuBytes, e.CpuBytes);
        }
        return null;
    }
}

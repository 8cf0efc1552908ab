using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Memory;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Core.Tests.Records;
using AiOs.Planner.Planning;

/// <summary>The hand-built plan document as it was before the typed record (kept to prove the record writes the same JSON).</summary>
internal static class LegacyPlanDocument
{
    private static readonly JsonSerializerOptions SettingsJson = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    /// <summary>The settings of a plan document (its <c>settings</c> object), as <see cref="Build"/> wrote them.</summary>
    public static TrainingSettings ReadSettings(JsonNode settings) =>
        settings.Deserialize<TrainingSettings>(SettingsJson) ?? throw new JsonException("the plan's settings are null");

    /// <summary>The <c>aios plan --json</c> document of <paramref name="plan"/>.</summary>
    public static JsonObject Build(PlanResult plan)
    {
        var m = plan.Memory;
        var model = plan.Model;
        var doc = new JsonObject
        {
            ["model"] = new JsonObject
            {
                ["name"] = model.Name,
                ["params"] = model.TotalParameters,
                ["layers"] = model.NumLayers,
                ["hidden_size"] = model.HiddenSize,
                ["largest_layer_params"] = model.LargestLayerParameters,
            },
            ["hardware"] = new JsonObject
            {
                ["name"] = plan.Hardware.Name,
                ["nodes"] = plan.Nodes,
                ["gpus_per_node"] = plan.GpusPerNode,
                ["gpu"] = plan.Hardware.Gpu?.Model,
            },
            ["executor"] = ExecutorJsonConverter.Name(plan.Settings.Executor),
            ["settings"] = JsonSerializer.SerializeToNode(plan.Settings, SettingsJson),
            ["feasible"] = plan.Feasible,
            ["problems"] = new JsonArray(plan.Problems.Select(p => (JsonNode)JsonValue.Create(p)!).ToArray()),
            ["notes"] = new JsonArray(plan.Notes.Select(n => (JsonNode)JsonValue.Create(n)!).ToArray()),
            ["memory"] = new JsonObject
            {
                ["gpu_peak_bytes"] = m.GpuAllocatedPeak.Value,
                ["gpu_reserved_peak_bytes"] = m.Gpu.Peak.Value,
                ["gpu_capacity_bytes"] = m.Gpu.Capacity.Value,
                ["gpu_peak_phase"] = m.GpuPeakPhase,
                ["cpu_peak_bytes"] = m.CpuPeak.Value,
                ["cpu_pinned_bytes"] = m.CpuPinned.Peak.Value,
                ["cpu_pageable_bytes"] = m.CpuPageable.Peak.Value,
                ["cpu_capacity_bytes"] = plan.Hardware.Cpu.Ram.Value,
                ["nvme_bytes"] = m.Nvme.Peak.Value,
                ["nvme_capacity_bytes"] = m.Nvme.Capacity.Value,
                ["model_states_gpu_bytes"] = m.ModelStatesGpu.Value,
                ["model_states_cpu_bytes"] = m.ModelStatesCpu.Value,
                ["breakdown"] = new JsonObject
                {
                    ["gpu"] = Items(m.Gpu),
                    ["cpu_pinned"] = Items(m.CpuPinned),
                    ["cpu_pageable"] = Items(m.CpuPageable),
                    ["nvme"] = Items(m.Nvme),
                },
            },
            ["deepspeed_estimate"] = DeepSpeedEstimate(plan),
        };
        if (plan.Step is { } step)
        {
            bool gpu = plan.Hardware.HasGpu;
            doc["step"] = new JsonObject
            {
                ["time_s"] = step.Time.Seconds,
                ["first_step_time_s"] = plan.FirstStep?.Time.Seconds,
                ["tokens_per_s"] = step.TokensPerSecond,
                ["model_tflops"] = step.ModelTflopsPerGpu,
                ["bottleneck"] = ResourceNames.Of(step.Bottleneck, gpu),
                ["phases"] = new JsonObject
                {
                    ["forward_s"] = step.Phases.Forward.Seconds,
                    ["backward_s"] = step.Phases.Backward.Seconds,
                    ["optimizer_s"] = step.Phases.Optimizer.Seconds,
                },
                ["critical_path_s"] = PerResource(step.CriticalPath.ToDictionary(kv => kv.Key, kv => kv.Value.Seconds), gpu),
                ["operations"] = step.Operations,
            };
            if (plan.Correction is { } c) doc["step"]!.AsObject()["correction"] = Correction(c);
            doc["traffic"] = new JsonObject
            {
                ["nvme_read_bytes"] = step.Traffic.NvmeRead.Value,
                ["nvme_write_bytes"] = step.Traffic.NvmeWrite.Value,
                ["h2d_bytes"] = step.Traffic.H2d.Value,
                ["d2h_bytes"] = step.Traffic.D2h.Value,
                ["network_bytes"] = step.Traffic.Network.Value,
            };
            doc["utilization"] = PerResource(step.Busy.Keys.ToDictionary(k => k, step.Utilization), gpu);
            if (StepBounds.Of(plan) is { Count: > 0 } bounds)
                doc["lower_bounds"] = new JsonArray(bounds.Select(b => (JsonNode)new JsonObject
                {
                    ["resource"] = b.Resource, ["time_s"] = b.Time.Seconds, ["basis"] = b.Basis, ["prediction_ratio"] = b.Ratio,
                }).ToArray());
            memory(doc)["simulated_peaks"] = new JsonObject
            {
                ["gpu_bytes"] = step.MemoryPeaks[MemoryTier.Gpu].Value,
                ["cpu_pinned_bytes"] = step.MemoryPeaks[MemoryTier.CpuPinned].Value,
                ["cpu_pageable_bytes"] = step.MemoryPeaks[MemoryTier.CpuPageable].Value,
                ["nvme_bytes"] = step.MemoryPeaks[MemoryTier.Nvme].Value,
            };
        }
        if (plan.GpuMemoryLimit is { } limit) doc["hardware"]!.AsObject()["gpu_memory_limit_bytes"] = limit.Value;
        return doc;

        static JsonObject memory(JsonObject d) => d["memory"]!.AsObject();
    }

    /// <summary>Whether the learned correction was applied, why not, and the simulator's own phases (what a history learns from).</summary>
    private static JsonObject Correction(AiOs.Planner.Learning.CorrectionOutcome c) => new()
    {
        ["corrected"] = c.Applied,
        ["reason"] = c.Reason,
        ["ratios"] = new JsonObject { ["forward"] = c.Ratios.Forward, ["backward"] = c.Ratios.Backward, ["optimizer"] = c.Ratios.Optimizer },
        ["uncorrected"] = new JsonObject
        {
            ["time_s"] = c.Uncorrected.Total,
            ["phases"] = new JsonObject { ["forward_s"] = c.Uncorrected.Forward, ["backward_s"] = c.Uncorrected.Backward, ["optimizer_s"] = c.Uncorrected.Optimizer },
        },
    };

    private static JsonObject PerResource(Dictionary<ResourceKind, double> values, bool gpu)
    {
        var o = new JsonObject();
        foreach (var (k, v) in values.OrderBy(kv => kv.Key)) o[ResourceNames.Of(k, gpu)] = v;
        return o;
    }

    private static JsonArray Items(TierUse tier) =>
        new(tier.Items.Select(i => (JsonNode)new JsonObject { ["name"] = i.Name, ["bytes"] = i.Bytes.Value, ["note"] = i.Note }).ToArray());

    /// <summary>DeepSpeed's own estimator for the same stage and offload, where it has one.</summary>
    private static JsonObject? DeepSpeedEstimate(PlanResult plan)
    {
        var s = plan.Settings;
        var model = plan.Model;
        int gpus = Math.Max(1, plan.GpusPerNode), nodes = plan.Nodes;
        bool optimizerOff = s.OptimizerOffload != OffloadTier.None;
        if (s.PartitionsParameters)
        {
            var e = DeepSpeedEstimators.Zero3(model.TotalParameters, DeepSpeedModules.LargestModuleParameters(model), gpus, nodes,
                cpuOffload: optimizerOff, cpuOffloadParams: s.ParamOffload != OffloadTier.None);
            return new JsonObject { ["estimator"] = "estimate_zero3_model_states_mem_needs", ["gpu_bytes"] = e.GpuBytes, ["cpu_bytes"] = e.CpuBytes };
        }
        if (s.ZeroStage == ZeroStage.Zero2)
        {
            var e = DeepSpeedEstimators.Zero2(model.TotalParameters, gpus, nodes, cpuOffload: optimizerOff);
            return new JsonObject { ["estimator"] = "estimate_zero2_model_states_mem_needs", ["gpu_bytes"] = e.GpuBytes, ["cpu_bytes"] = e.CpuBytes };
        }
        return null;
    }
}

using System.Text.Json;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;

namespace AiOs.Planner.Reports.Tests;

/// <summary>A run folder in the engine's format, with a real prediction and a measured trace made from it (stretched by 10%).</summary>
internal static class SyntheticRun
{
    public static string Create(bool withPrediction = true)
    {
        string dir = Directory.CreateTempSubdirectory("aios-run-").FullName;
        var model = ModelCatalog.Default.Load("gpt2");
        var hardware = ProfileCatalog.Default.Load("rtx4090-64gb-pcie4");
        // Every parameter on NVMe (max_in_cpu's default would keep all of gpt2's in RAM, and the run would read none).
        var settings = SettingsRules.Resolve(new TrainingSettings { ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Nvme, NvmePath = "/nvme", MicroBatch = 2, MaxInCpu = 0 }, false);
        var plan = TrainingPlanner.Plan(model, hardware, settings, new PlanOptions { KeepTimeline = true });
        var step = plan.Step!;
        if (withPrediction)
        {
            AtomicFile.WriteAllText(Path.Combine(dir, "prediction.json"), DeepSpeedConfig.ToJson(PlanDocument.Build(plan)));
            Timeline.Write(Path.Combine(dir, "predicted-timeline.jsonl"), step, hardware.HasGpu);
            DescriptionJson.WriteFileAtomic(Path.Combine(dir, "profile.json"), hardware);
        }
        File.WriteAllText(Path.Combine(dir, "settings.json"), JsonSerializer.Serialize(new { model, settings }, DescriptionJson.Options));
        var metrics = new List<string>();
        var trace = new List<string>();
        for (int s = 0; s < 4; s++)
        {
            double stretch = s == 0 ? 1.5 : 1.1;
            metrics.Add(JsonSerializer.Serialize(new
            {
                step = s, loss = 5.5 - 0.1 * s, tokens = 2048, wall_ms = step.Time.Milliseconds * stretch,
                forward_ms = step.Phases.Forward.Milliseconds * stretch, backward_ms = step.Phases.Backward.Milliseconds * stretch,
                optimizer_ms = step.Phases.Optimizer.Milliseconds * stretch, io_stall_ms = 1.0, tokens_per_second = 2048 / (step.Time.Seconds * stretch),
                nvme_read_g_bps = 5.5, nvme_write_g_bps = 4.0, peak_resident_bytes = 3L << 30,
            }));
            foreach (var span in step.Spans!)
                trace.Add(JsonSerializer.Serialize(new
                {
                    step = s, micro_batch = span.MicroBatch, resource = ResourceNames.Of(span.Resource, true), operation = Timeline.Name(span.Kind),
                    layer = span.Layer, start_ns = (long)(span.StartNs * stretch), end_ns = (long)(span.EndNs * stretch),
                }));
        }
        File.WriteAllLines(Path.Combine(dir, "metrics.jsonl"), metrics);
        File.WriteAllLines(Path.Combine(dir, "trace.jsonl"), trace);
        return dir;
    }
}

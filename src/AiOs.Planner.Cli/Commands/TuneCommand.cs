using System.CommandLine;
using System.Text.Json.Nodes;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Tuning;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary><c>aios tune</c>: the best settings for a model on a machine, found with the simulator.</summary>
public static class TuneCommand
{
    public static Command Create(CliIo io)
    {
        var options = new SettingsOptions();
        var objective = new Option<TuneObjective>("--objective") { Description = "throughput (most tokens/s) or memory (least GPU memory)", DefaultValueFactory = _ => TuneObjective.Throughput, CustomParser = SettingsOptions.ParseEnum<TuneObjective> };
        var budget = new Option<int>("--budget") { Description = "Candidates to evaluate at most", DefaultValueFactory = _ => 10_000 };
        var maxAccumulation = new Option<int>("--max-grad-accumulation") { Description = "Largest gradient accumulation to try (1 keeps the global batch at micro-batch × GPUs)", DefaultValueFactory = _ => 8 };
        var maxMicro = new Option<int>("--max-micro-batch") { Description = "Largest micro-batch to try", DefaultValueFactory = _ => 128 };
        var output = new Option<string?>("--out", "-o") { Description = "Folder to write aios-settings.json (for aios plan/train --settings) and ds_config.json" };
        var json = new Option<bool>("--json") { Description = "Print one JSON document on stdout" };
        var lr = new LearningRateOptions();
        var steps = new Option<int>("--steps") { Description = "Optimizer steps of the run, for ds_config.json's scheduler (total_num_steps, default warm-up)", DefaultValueFactory = _ => DsConfigCommand.DefaultSteps };
        var command = new Command("tune", "Search placement, micro-batch, checkpointing, AIO, buffers, prefetch, sub-groups and schedule with the simulator.");
        options.AddTo(command);
        command.Options.Add(objective);
        command.Options.Add(budget);
        command.Options.Add(maxAccumulation);
        command.Options.Add(maxMicro);
        command.Options.Add(output);
        command.Options.Add(json);
        command.Options.Add(steps);
        lr.AddTo(command);
        command.SetAction(r =>
        {
            var model = options.LoadModel(r);
            var hardware = options.LoadHardware(r);
            var optimizer = new DeepSpeedOptimizer { Schedule = lr.Build(r, r.GetValue(steps)) };
            var request = new TuneRequest
            {
                Model = model,
                Hardware = hardware,
                Objective = r.GetValue(objective),
                Base = options.Build(r),
                Budget = Math.Max(1, r.GetValue(budget)),
                MaxGradAccumulation = r.GetValue(maxAccumulation),
                MaxMicroBatch = r.GetValue(maxMicro),
            };
            var result = Tuner.Tune(request);
            if (result.Best is not null && r.GetValue(output) is { } folder)
            {
                Directory.CreateDirectory(folder);
                DescriptionJson.WriteFileAtomic(Path.Combine(folder, "aios-settings.json"), result.Best.Settings);
                int gpus = result.Best.Settings.GpusPerNode ?? hardware.GpusPerNode, nodes = result.Best.Settings.Nodes ?? hardware.Nodes;
                AtomicFile.WriteAllText(Path.Combine(folder, "ds_config.json"), DeepSpeedConfig.ToJson(DeepSpeedConfig.Build(model, result.Best.Settings, gpus, nodes, optimizer)));
            }
            if (r.GetValue(json)) io.Stdout.Write(DeepSpeedConfig.ToJson(Json(result)));
            else Render(io.Console, result, r.GetValue(output));
            return result.Best is null ? ExitCodes.Infeasible : ExitCodes.Ok;
        });
        return command;
    }

    private static JsonObject Json(TuneResult result)
    {
        static JsonObject Candidate(Candidate c) => new()
        {
            ["description"] = Tuner.Describe(c.Settings),
            ["tokens_per_s"] = c.TokensPerSecond,
            ["step_time_s"] = c.StepTime.Seconds,
            ["bottleneck"] = c.Bottleneck,
            ["gpu_peak_bytes"] = c.GpuPeak.Value,
            ["host_peak_bytes"] = c.HostPeak.Value,
            ["pinned_peak_bytes"] = c.PinnedPeak.Value,
            ["nvme_bytes"] = c.NvmePeak.Value,
            ["settings"] = System.Text.Json.JsonSerializer.SerializeToNode(c.Settings, DescriptionJson.Options),
        };
        return new JsonObject
        {
            ["best"] = result.Best is null ? null : Candidate(result.Best),
            ["alternatives"] = new JsonArray(result.Alternatives.Select(c => (JsonNode)Candidate(c)).ToArray()),
            ["pareto_front"] = new JsonArray(result.ParetoFront.Select(c => (JsonNode)Candidate(c)).ToArray()),
            ["baselines"] = new JsonObject(result.Baselines.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)Candidate(kv.Value)))),
            ["evaluated"] = result.Evaluated,
            ["simulated"] = result.Simulated,
            ["feasible"] = result.FeasibleCount,
            ["elapsed_s"] = result.Elapsed.TotalSeconds,
            ["explanation"] = new JsonArray(result.Explanation.Select(l => (JsonNode)JsonValue.Create(l)!).ToArray()),
        };
    }

    private static void Render(IAnsiConsole console, TuneResult result, string? folder)
    {
        foreach (string line in result.Explanation) console.MarkupLineInterpolated($"{line}");
        if (result.ParetoFront.Count > 0)
        {
            var table = new Table().Title("Throughput against host RAM (Pareto front)").AddColumns("tokens/s", "step", "host RAM", "GPU", "bottleneck", "settings");
            foreach (var c in result.ParetoFront.Take(8))
                table.AddRow(c.TokensPerSecond.ToString("N0"), c.StepTime.ToString(), c.HostPeak.ToString(), c.GpuPeak.ToString(), Markup.Escape(c.Bottleneck), Markup.Escape(Tuner.Describe(c.Settings)));
            console.Write(table);
        }
        if (result.Best is { } best)
        {
            var s = best.Settings;
            console.MarkupLineInterpolated($"Knobs: aio block {s.Aio.BlockSize}, queue depth {s.Aio.QueueDepth}, threads {s.Aio.IntraOpParallelism}; buffers {s.BufferCount} × {s.BufferSize:N0}; prefetch {s.PrefetchDepth}; sub-group {s.SubGroupSize:N0}; pipelined read {s.PipelineRead}, write {s.PipelineWrite}; pin memory {s.PinMemory}.");
            if (folder is not null) console.MarkupLineInterpolated($"Wrote {Path.Combine(folder, "aios-settings.json")} and {Path.Combine(folder, "ds_config.json")}.");
        }
    }
}

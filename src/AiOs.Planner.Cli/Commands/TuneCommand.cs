using System.CommandLine;
using System.Text.Json.Nodes;
using AiOs.Planner.Cli.Rendering;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Settings;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Tuning;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary><c>aios tune</c>: the best settings for a model on a machine, found with the simulator.</summary>
public static class TuneCommand
{
    /// <summary>The search flags <c>tune</c> and <c>whatif</c> share, with the same defaults, so the two agree.</summary>
    internal sealed class SearchOptions
    {
        public Option<int> Budget { get; } = new("--budget") { Description = "Candidates to evaluate at most", DefaultValueFactory = _ => TuneRequest.DefaultBudget };
        public Option<int> MaxAccumulation { get; } = new("--max-grad-accumulation") { Description = "Largest gradient accumulation to try when --global-batch is not given (1 keeps the global batch at micro-batch × GPUs)", DefaultValueFactory = _ => TuneRequest.DefaultMaxGradAccumulation };
        public Option<int> MaxMicro { get; } = new("--max-micro-batch") { Description = "Largest micro-batch to try", DefaultValueFactory = _ => TuneRequest.DefaultMaxMicroBatch };
        public Option<int?> GlobalBatch { get; } = new("--global-batch") { Description = "Sequences per optimizer step, fixed (micro-batch × grad accumulation × GPUs × nodes); only combinations giving exactly this are tried" };
        public Option<double> Headroom { get; } = new("--memory-headroom") { Description = "Share of each memory tier kept free, e.g. 0.05 (the memory model has under-predicted peaks by up to 7%)", DefaultValueFactory = _ => TuneRequest.DefaultMemoryHeadroom };

        public Option<bool> AllowEightBit { get; } = new("--allow-8bit-optimizer") { Description = "Let candidates that offload the optimizer keep its state block-wise 8-bit (half the bytes in RAM and on NVMe; a slower CPU update)" };
        public Option<double> OptimizerRamMargin { get; } = new("--optimizer-ram-margin") { Description = "Share of host RAM kept free, beyond the headroom, when the tuner gives an NVMe optimizer a RAM budget (what RAM allows otherwise), e.g. 0.1; --optimizer-ram-budget fixes the budget instead", DefaultValueFactory = _ => TuneRequest.DefaultOptimizerRamMargin };

        public IEnumerable<Option> All => [Budget, MaxAccumulation, MaxMicro, GlobalBatch, Headroom, OptimizerRamMargin, AllowEightBit];
    }

    public static Command Create(CliIo io)
    {
        var options = new SettingsOptions();
        var search = new SearchOptions();
        var objective = new Option<TuneObjective>("--objective") { Description = "throughput (most tokens/s) or memory (least GPU memory)", DefaultValueFactory = _ => TuneObjective.Throughput, CustomParser = SettingsOptions.ParseEnum<TuneObjective> };
        var output = new Option<string?>("--out", "-o") { Description = "Folder to write aios-settings.json (the best plan, for aios plan/train --settings) and ds_config.json (the best plan DeepSpeed can run)" };
        var json = new Option<bool>("--json") { Description = "Print one JSON document on stdout" };
        var lr = new LearningRateOptions();
        var steps = new Option<int>("--steps") { Description = "Optimizer steps of the run, for ds_config.json's scheduler (total_num_steps, default warm-up)", DefaultValueFactory = _ => DsConfigCommand.DefaultSteps };
        var gpuLimit = GpuMemoryLimitOption.Create();
        var command = new Command("tune", "Search placement, micro-batch, checkpointing, AIO, buffers, prefetch, sub-groups and schedule with the simulator.");
        options.AddTo(command);
        command.Options.Add(objective);
        foreach (var o in search.All) command.Options.Add(o);
        command.Options.Add(output);
        command.Options.Add(json);
        command.Options.Add(steps);
        command.Options.Add(gpuLimit);
        lr.AddTo(command);
        command.SetAction(r =>
        {
            var model = options.LoadModel(r);
            var profile = options.LoadHardware(r);
            var limit = r.GetValue(gpuLimit);
            var hardware = Planning.GpuMemoryLimit.Apply(profile, limit);
            if (limit is { } cap) io.Errors.MarkupLineInterpolated($"[grey]note:[/] {Planning.GpuMemoryLimit.Note(profile, cap)}");
            var optimizer = new DeepSpeedOptimizer { Schedule = lr.Build(r, r.GetValue(steps)) };
            var built = options.BuildWithNotes(r);
            foreach (string note in built.Notes) io.Errors.MarkupLineInterpolated($"[grey]note:[/] {note}");
            var request = new TuneRequest
            {
                Model = model,
                Hardware = hardware,
                Objective = r.GetValue(objective),
                Base = built.Settings,
                Budget = Math.Max(1, r.GetValue(search.Budget)),
                MaxGradAccumulation = r.GetValue(search.MaxAccumulation),
                MaxMicroBatch = r.GetValue(search.MaxMicro),
                // A --micro-batch given on the command line is kept; otherwise the tuner searches it.
                MicroBatch = r.GetResult(options.MicroBatch) is { Implicit: false } ? built.Settings.MicroBatch : null,
                // --tiling-factor 1 and --offload-activations none are choices too: the tuner keeps them rather than trying others.
                TilingGiven = r.GetResult(options.TilingFactor) is { Implicit: false },
                ActivationOffloadGiven = r.GetResult(options.OffloadActivations) is { Implicit: false },
                GlobalBatch = r.GetValue(search.GlobalBatch),
                MemoryHeadroom = r.GetValue(search.Headroom),
                AllowEightBitOptimizer = r.GetValue(search.AllowEightBit),
                OptimizerRamMargin = r.GetValue(search.OptimizerRamMargin),
            };
            var result = Tuner.Tune(request);
            // ds_config.json is for DeepSpeed: its plan is the best DeepSpeed can run as DeepSpeed runs it, so under
            // --executor aios the search runs again priced as DeepSpeed (the engine's best may differ from DeepSpeed's).
            if (result.Problems.Count == 0 && r.GetValue(output) is not null && built.Settings.Executor != ExecutorKind.DeepSpeed)
                result = result with { DeepSpeedBest = Tuner.Tune(request with { Base = built.Settings with { Executor = ExecutorKind.DeepSpeed } }).DeepSpeedBest };
            var written = result.Problems.Count == 0 && r.GetValue(output) is { } folder ? Write(folder, model, hardware, result, optimizer) : null;
            if (r.GetValue(json)) io.Stdout.Write(DeepSpeedConfig.ToJson(SearchDocuments.Tune(result, written, limit?.Value)));
            else Render(io.Console, io.Errors, result, written);
            return result.Problems.Count > 0 ? ExitCodes.Usage : result.Best is null ? ExitCodes.Infeasible : ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>What <c>--out</c> wrote: each file's path (null when not written) and warnings about the choice.</summary>
    /// <summary>aios-settings.json from the best plan; ds_config.json from the best plan DeepSpeed can run, which may be another.</summary>
    private static TuneFiles? Write(string folder, Models.ModelSpec model, Hardware.HardwareProfile hardware, TuneResult result, DeepSpeedOptimizer optimizer)
    {
        if (result.Best is not { } best) return null;
        Directory.CreateDirectory(folder);
        var warnings = new List<string>();
        string settingsPath = Path.Combine(folder, "aios-settings.json");
        DescriptionJson.WriteFileAtomic(settingsPath, best.Settings);
        string? dsPath = null;
        if (result.DeepSpeedBest is { } ds)
        {
            dsPath = Path.Combine(folder, "ds_config.json");
            int gpus = ds.Settings.GpusPerNode ?? hardware.GpusPerNode, nodes = ds.Settings.Nodes ?? hardware.Nodes;
            AtomicFile.WriteAllText(dsPath, DeepSpeedConfig.ToJson(DeepSpeedConfig.Build(model, ds.Settings, gpus, nodes, optimizer)));
            warnings.AddRange(DeepSpeedConfig.Notes(ds.Settings));
            if (best.Settings.OptimizerState != ds.Settings.OptimizerState)
                warnings.Add($"{settingsPath} keeps 8-bit optimizer state (aios train only); DeepSpeed's offload path has none, so {dsPath} comes from the best fp32 plan.");
            if (ds != best)
                warnings.Add($"DeepSpeed runs the optimizer after backward; the best plan's overlapped schedule is the aios engine's, so {settingsPath} holds the best plan ({best.TokensPerSecond:N0} tokens/s) and {dsPath} the best DeepSpeed can run ({ds.TokensPerSecond:N0} tokens/s).");
        }
        else
        {
            warnings.Add($"No plan DeepSpeed can run fits (only the aios engine's overlapped schedule does): ds_config.json was not written; {settingsPath} is for aios plan/train --settings.");
        }
        return new TuneFiles(settingsPath, dsPath, warnings);
    }

    private static void Render(IAnsiConsole console, IAnsiConsole errors, TuneResult result, TuneFiles? written)
    {
        foreach (var p in result.Problems) console.MarkupLineInterpolated($"[red]error:[/] {p}");
        if (result.Problems.Count > 0) return;
        foreach (string line in result.Explanation) console.MarkupLineInterpolated($"{line}");
        if (result.ParetoFront.Count > 0)
        {
            var table = new Table().Title("Throughput against host RAM (Pareto front)").AddTextColumns("tokens/s", "step", "sequences/step", "host RAM", "GPU", "bottleneck", "settings");
            foreach (var c in result.ParetoFront.Take(8))
                table.AddTextRow(c.TokensPerSecond.ToString("N0"), c.StepTime.ToString(), c.SequencesPerStep.ToString("N0"), c.HostPeak.ToString(), c.GpuPeak.ToString(), c.Bottleneck, Tuner.Describe(c.Settings));
            console.Write(table);
        }
        if (result.Best is { } best)
        {
            var s = best.Settings;
            console.MarkupLineInterpolated($"Knobs: aio block {s.Aio.BlockSize}, queue depth {s.Aio.QueueDepth}, threads {s.Aio.IntraOpParallelism}; buffers {s.BufferCount} × {s.BufferSize:N0}; prefetch {s.PrefetchDepth}; sub-group {s.SubGroupSize:N0}; pipelined read {s.PipelineRead}, write {s.PipelineWrite}; pin memory {s.PinMemory}.");
        }
        if (written is null) return;
        foreach (string w in written.Warnings) errors.MarkupLineInterpolated($"[yellow]warning:[/] {w}");
        console.MarkupLineInterpolated($"Wrote {written.Settings} (the best plan, for aios plan/train --settings).");
        if (written.DeepSpeed is not null) console.MarkupLineInterpolated($"Wrote {written.DeepSpeed} (the best plan DeepSpeed can run).");
    }
}

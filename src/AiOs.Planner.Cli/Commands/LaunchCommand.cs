using System.CommandLine;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Engine.Launch;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary>
/// <c>aios launch --out DIR</c>: a folder that runs the chosen settings on one or many hosts with DeepSpeed
/// (ds_config.json, a hostfile template, launch.sh with the deepspeed launcher's command line, and train.py).
/// </summary>
public static class LaunchCommand
{
    public static Command Create(CliIo io)
    {
        var options = new SettingsOptions();
        var output = new Option<string>("--out", "-o") { Description = "Folder to write (must not exist or be empty, unless --force); written atomically", Required = true };
        var force = new Option<bool>("--force") { Description = "Replace a non-empty --out folder (the old one is removed only once the new one is complete)" };
        var hfModel = new Option<string?>("--hf-model") { Description = "Hugging Face model id or folder for train.py to fine-tune (default: random weights from the model's config.json, written to model/)" };
        var masterAddr = new Option<string?>("--master-addr") { Description = "Address of the node that runs rank 0 (default: 127.0.0.1 on one node, the hostfile's first host on several)" };
        var masterPort = new Option<int>("--master-port") { Description = "Rendezvous port on that node", DefaultValueFactory = _ => DeepSpeedLaunchRequest.DefaultMasterPort };
        var steps = new Option<int>("--steps") { Description = "Optimizer steps train.py runs (also the scheduler's total_num_steps)", DefaultValueFactory = _ => DsConfigCommand.DefaultSteps };
        var lr = new LearningRateOptions();
        var command = new Command("launch", "Write a folder that runs the settings with DeepSpeed on one or many hosts: ds_config.json, hostfile, launch.sh, train.py.");
        options.AddTo(command);
        foreach (Option o in new Option[] { output, force, hfModel, masterAddr, masterPort, steps }) command.Options.Add(o);
        lr.AddTo(command);
        command.SetAction(r =>
        {
            string folder = r.GetValue(output)!;
            if (LaunchFolder.Refusal(folder, r.GetValue(force)) is { } refusal)
            {
                io.Errors.MarkupLineInterpolated($"[red]error:[/] {refusal}");
                return ExitCodes.Usage;
            }
            if (r.GetValue(steps) < 1 || r.GetValue(masterPort) is < 1 or > 65535)
            {
                io.Errors.MarkupLineInterpolated($"[red]error:[/] --steps must be at least 1 and --master-port between 1 and 65535 (got {r.GetValue(steps)} and {r.GetValue(masterPort)}).");
                return ExitCodes.Usage;
            }
            var optimizer = new DeepSpeedOptimizer { Schedule = lr.Build(r, r.GetValue(steps)) };
            var built = options.BuildWithNotes(r);
            foreach (string note in built.Notes) io.Errors.MarkupLineInterpolated($"[grey]note:[/] {note}");
            var plan = TrainingPlanner.Plan(options.LoadModel(r), options.LoadHardware(r), built.Settings);
            if (plan.SettingsProblems.Count > 0)
            {
                foreach (var p in plan.SettingsProblems) io.Errors.MarkupLineInterpolated($"[red]error:[/] {p}");
                return ExitCodes.Usage;
            }
            var s = plan.Settings;
            var request = new DeepSpeedLaunchRequest(plan.Model, DeepSpeedConfig.Build(plan.Model, s, plan.GpusPerNode, plan.Nodes, optimizer),
                plan.GpusPerNode, plan.Nodes, s.SeqLen, r.GetValue(steps), Summary(s, plan.Hardware.Name))
            {
                HfModel = r.GetValue(hfModel),
                MasterAddress = r.GetValue(masterAddr),
                MasterPort = r.GetValue(masterPort),
            };
            DeepSpeedLaunchFiles files;
            try
            {
                files = DeepSpeedLaunch.Build(request);
            }
            catch (ArgumentException e)
            {
                io.Errors.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
                return ExitCodes.Usage;
            }
            LaunchFolder.Write(folder, files.Files, r.GetValue(force), [DeepSpeedLaunchFiles.LaunchName, DeepSpeedLaunchFiles.TrainName]);
            io.Console.MarkupLineInterpolated($"Wrote {Path.GetFullPath(folder)}: {string.Join(", ", files.Files.Keys)}.");
            io.Console.MarkupLineInterpolated($"Run: bash {Path.Combine(folder, DeepSpeedLaunchFiles.LaunchName)} ({plan.Nodes} node(s) x {plan.GpusPerNode} GPU(s); edit hostfile first for several nodes).");
            // As ds-config: the same warnings DeepSpeed's config cannot carry, and a plan that does not fit says so.
            if (s.GradientOffload is { } g && g != s.OptimizerOffload)
                io.Errors.MarkupLineInterpolated($"[yellow]warning:[/] DeepSpeed keeps gradients with the optimizer ({s.OptimizerOffload.ToString().ToLowerInvariant()}); --offload-gradients {g.ToString().ToLowerInvariant()} is not in the config.");
            foreach (string note in DeepSpeedConfig.Notes(s)) io.Errors.MarkupLineInterpolated($"[yellow]warning:[/] {note}");
            foreach (string p in plan.CapacityProblems) io.Errors.MarkupLineInterpolated($"[yellow]warning:[/] {p}");
            return plan.Feasible ? ExitCodes.Ok : ExitCodes.Infeasible;
        });
        return command;
    }

    private static string Summary(TrainingSettings s, string hardware) =>
        $"ZeRO stage {DeepSpeedConfig.StageNumber(s.ZeroStage)}, parameters on {Tier(s.ParamOffload)}, optimizer on {Tier(s.OptimizerOffload)}, " +
        $"micro-batch {s.MicroBatch}, accumulation {s.GradAccumulation}, {s.SeqLen} tokens, {s.Precision.ToString().ToLowerInvariant()}; planned for {hardware}";

    private static string Tier(OffloadTier tier) => tier == OffloadTier.None ? "GPU" : tier.ToString().ToLowerInvariant();
}

using System.CommandLine;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Planning;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary><c>aios ds-config</c>: the DeepSpeed config for the chosen settings.</summary>
public static class DsConfigCommand
{
    public static Command Create(CliIo io)
    {
        var options = new SettingsOptions();
        var output = new Option<string?>("--out", "-o") { Description = "Write ds_config.json here (atomically); default: stdout" };
        var lr = new LearningRateOptions();
        var steps = new Option<int>("--steps") { Description = "Optimizer steps of the run: the scheduler's total_num_steps and the default warm-up (a tenth)", DefaultValueFactory = _ => DefaultSteps };
        var command = new Command("ds-config", "Emit a DeepSpeed ds_config.json for the settings.");
        options.AddTo(command);
        command.Options.Add(output);
        command.Options.Add(steps);
        lr.AddTo(command);
        command.SetAction(r =>
        {
            var optimizer = new DeepSpeedOptimizer { Schedule = lr.Build(r, r.GetValue(steps)) };
            var built = options.BuildWithNotes(r);
            foreach (string note in built.Notes) io.Errors.MarkupLineInterpolated($"[grey]note:[/] {note}");
            // The config is for DeepSpeed, so its capacity warnings price DeepSpeed, whatever --executor says; what DeepSpeed
            // cannot express (a RAM budget for part of the optimizer) becomes its nearest equivalent, with a note.
            var model = options.LoadModel(r);
            var hardware = options.LoadHardware(r);
            int ranks = Math.Max(1, built.Settings.GpusPerNode ?? hardware.GpusPerNode) * Math.Max(1, built.Settings.Nodes ?? hardware.Nodes);
            var (nearest, unsaid) = DeepSpeedConfig.NearestEquivalent(model, built.Settings, ranks);
            foreach (string note in unsaid) io.Errors.MarkupLineInterpolated($"[grey]note:[/] {note}");
            var plan = TrainingPlanner.Plan(model, hardware, nearest with { Executor = Settings.ExecutorKind.DeepSpeed });
            if (plan.SettingsProblems.Count > 0)
            {
                foreach (var p in plan.SettingsProblems) io.Errors.MarkupLineInterpolated($"[red]error:[/] {p}");
                return ExitCodes.Usage;
            }
            // Settings DeepSpeed has no key for: say so rather than emit a config that quietly differs from the plan.
            var s = plan.Settings;
            if (s.GradientOffload is { } g && g != s.OptimizerOffload)
                io.Errors.MarkupLineInterpolated($"[yellow]warning:[/] DeepSpeed keeps gradients with the optimizer ({s.OptimizerOffload.ToString().ToLowerInvariant()}); --offload-gradients {g.ToString().ToLowerInvariant()} is not in the config.");
            foreach (string note in DeepSpeedConfig.Notes(s)) io.Errors.MarkupLineInterpolated($"[yellow]warning:[/] {note}");
            string json = DeepSpeedConfig.ToJson(DeepSpeedConfig.Build(plan.Model, plan.Settings, plan.GpusPerNode, plan.Nodes, optimizer));
            if (r.GetValue(output) is { } path)
            {
                AtomicFile.WriteAllText(path, json);
                io.Console.MarkupLineInterpolated($"Wrote {path}.");
            }
            else
            {
                io.Stdout.Write(json);
            }
            // Warnings go to stderr, so the config on stdout stays a valid JSON file.
            foreach (string p in plan.CapacityProblems) io.Errors.MarkupLineInterpolated($"[yellow]warning:[/] {p}");
            return plan.Feasible ? ExitCodes.Ok : ExitCodes.Infeasible;
        });
        return command;
    }

    /// <summary>Default of --steps: a short fine-tune, so the default warm-up (a tenth) is 100 steps.</summary>
    internal const int DefaultSteps = 1000;
}

using System.CommandLine;
using AiOs.Planner.Cli.Rendering;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Planning;

namespace AiOs.Planner.Cli.Commands;

/// <summary><c>aios plan</c>: will it fit, and where does the memory go.</summary>
public static class PlanCommand
{
    public static Command Create(CliIo io)
    {
        var options = new SettingsOptions();
        var json = new Option<bool>("--json") { Description = "Print one JSON document on stdout instead of tables" };
        var command = new Command("plan", "Plan memory per tier (GPU, pinned and pageable RAM, NVMe) for a model on a machine.");
        options.AddTo(command);
        command.Options.Add(json);
        command.SetAction(r =>
        {
            var model = options.LoadModel(r);
            var hardware = options.LoadHardware(r);
            var plan = TrainingPlanner.Plan(model, hardware, options.Build(r));
            if (r.GetValue(json))
                io.Stdout.Write(DeepSpeedConfig.ToJson(PlanDocument.Build(plan)));
            else
                PlanTables.Render(io.Console, plan);
            return plan.Feasible ? ExitCodes.Ok : ExitCodes.Infeasible;
        });
        return command;
    }
}

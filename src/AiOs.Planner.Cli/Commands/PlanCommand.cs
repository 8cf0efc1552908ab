using System.CommandLine;
using AiOs.Planner.Cli.Rendering;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary><c>aios plan</c>: will it fit, and where does the memory go.</summary>
public static class PlanCommand
{
    public static Command Create(CliIo io)
    {
        var options = new SettingsOptions();
        var json = new Option<bool>("--json") { Description = "Print one JSON document on stdout instead of tables" };
        var timeline = new Option<string?>("--timeline") { Description = "Write every simulated span and memory level of one step as JSON lines to this file" };
        var noSimulate = new Option<bool>("--memory-only") { Description = "Plan memory only; skip the step simulation" };
        var gpuLimit = GpuMemoryLimitOption.Create();
        var command = new Command("plan", "Plan memory per tier (GPU, pinned and pageable RAM, NVMe) for a model on a machine.");
        options.AddTo(command);
        command.Options.Add(json);
        command.Options.Add(timeline);
        command.Options.Add(noSimulate);
        command.Options.Add(gpuLimit);
        command.SetAction(r =>
        {
            var model = options.LoadModel(r);
            var profile = options.LoadHardware(r);
            var limit = r.GetValue(gpuLimit);
            var hardware = GpuMemoryLimit.Apply(profile, limit);
            string? timelinePath = r.GetValue(timeline);
            var planOptions = new PlanOptions
            {
                Simulate = !r.GetValue(noSimulate), KeepTimeline = timelinePath is not null, FirstStep = true,
                Correction = Calibration.Learning.LearnedCorrection.For(hardware),
            };
            var built = options.BuildWithNotes(r);
            // The planner never creates the offload folder: an existing one is checked (and may fall back to CPU), a missing one announced.
            var folder = DefaultOffloadFolder.Validate(model, hardware, built.Settings, mayCreate: false);
            IEnumerable<string> notes = limit is { } cap ? [GpuMemoryLimit.Note(profile, cap), .. built.Notes] : built.Notes;
            var planned = TrainingPlanner.Plan(model, hardware, folder.Settings, planOptions);
            var plan = planned with
            {
                Notes = folder.Note is null ? [.. notes, .. planned.Notes] : [.. notes, .. planned.Notes, folder.Note],
                GpuMemoryLimit = limit,
            };
            if (timelinePath is not null && plan.Step is { } step) Timeline.Write(timelinePath, step, hardware.HasGpu);
            if (r.GetValue(json))
                io.Stdout.Write(DeepSpeedConfig.ToJson(PlanDocument.Build(plan)));
            else
            {
                foreach (string note in plan.Notes) io.Console.MarkupLineInterpolated($"[grey]note:[/] {note}");
                PlanTables.Render(io.Console, plan);
                RenderBounds(io.Console, plan);
            }
            return plan.SettingsProblems.Count > 0 ? ExitCodes.Usage : plan.Feasible ? ExitCodes.Ok : ExitCodes.Infeasible;
        });
        return command;
    }

    /// <summary>The step's lower bounds when the plan offloads to NVMe: what the hardware allows at best, and the prediction's distance from it.</summary>
    private static void RenderBounds(IAnsiConsole console, PlanResult plan)
    {
        var bounds = StepBounds.Of(plan);
        if (bounds.Count == 0 || plan.Step is not { } step) return;
        var table = new Table().Title($"Lower bounds of the step (predicted {step.Time})").AddColumns("resource", "bound", "predicted ÷ bound", "work ÷ rate");
        foreach (var b in bounds)
            table.AddRow(Markup.Escape(b.Resource), b.Time.ToString(), $"{b.Ratio:N2}×", Markup.Escape(b.Basis));
        console.Write(table);
    }
}

using System.CommandLine;
using System.Text.Json.Nodes;
using AiOs.Planner.Cli.Rendering;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Memory;
using AiOs.Planner.Planning;
using AiOs.Planner.Storage;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary><c>aios check-nvme PATH</c>: can this folder hold the swap files, and what is it.</summary>
public static class CheckNvmeCommand
{
    public static Command Create(CliIo io)
    {
        var path = new Argument<string>("path") { Description = "Folder for NVMe swap files (created if missing)" };
        var options = new SettingsOptions(required: false);
        var noFallback = new Option<bool>("--no-fallback") { Description = "An unusable folder is an error, never a fallback to CPU offload" };
        var json = new Option<bool>("--json") { Description = "Print one JSON document on stdout" };
        var command = new Command("check-nvme", "Check an NVMe offload folder: space for a plan (with --model and --hardware), filesystem, O_DIRECT, device.") { path };
        options.AddTo(command);
        command.Options.Add(noFallback);
        command.Options.Add(json);
        command.SetAction(r =>
        {
            string folder = r.GetValue(path)!;
            string? modelName = r.GetValue(options.Model), hardwareName = r.GetValue(options.Hardware);
            if ((modelName is null) != (hardwareName is null))
            {
                io.Errors.MarkupLine("[red]error:[/] give both --model and --hardware to size the swap files, or neither to check the folder only.");
                return ExitCodes.Usage;
            }
            PlanResult? plan = null;
            if (modelName is not null)
            {
                var settings = options.Build(r);
                if (settings.NvmePath is null) settings = options.Build(r) with { NvmePath = folder };
                if (!settings.UsesNvme)
                    settings = settings with { ParamOffload = Settings.OffloadTier.Nvme, OptimizerOffload = Settings.OffloadTier.Nvme, ZeroStage = Settings.ZeroStage.Infinity };
                plan = TrainingPlanner.Plan(options.LoadModel(r), options.LoadHardware(r), settings);
            }
            var check = NvmeCheck.Check(folder, plan?.Memory.Nvme.Items ?? []);
            var decision = plan is null ? null : OffloadFallback.Decide(plan.Model, plan.Hardware, plan.Settings, check, allowFallback: !r.GetValue(noFallback));
            if (r.GetValue(json)) io.Stdout.Write(DeepSpeedConfig.ToJson(NvmeCheckDocument.Of(check, decision)));
            else Render(io, check, decision);
            if (decision is { Failed: true } || (decision is null && !check.Usable)) return ExitCodes.Infeasible;
            return decision is { FellBack: true } ? ExitCodes.FellBackToCpu : ExitCodes.Ok;
        });
        return command;
    }

    private static void Render(CliIo io, NvmeCheckResult check, FallbackDecision? decision)
    {
        var console = io.Console;
        var f = check.Facts;
        var table = new Table().AddColumns("", "").HideHeaders();
        table.AddRow("folder", Markup.Escape(check.Path + (check.Created ? " (created)" : "")));
        if (f is not null)
        {
            table.AddRow("mount", Markup.Escape($"{f.MountPoint} ({f.FileSystem}) from {f.Device}"));
            table.AddRow("device", Markup.Escape($"{f.BlockDevice ?? "?"} {f.DeviceModel ?? ""}; rotational flag: {(f.Rotational is null ? "unknown" : f.Rotational.Value ? "1" : "0")}"));
            table.AddRow("O_DIRECT", f.DirectIo ? "works" : "[yellow]does not work[/]");
            table.AddRow("free", Markup.Escape($"{f.Free} of {f.Total}"));
        }
        foreach (MemoryItem need in check.Needs) table.AddRow(Markup.Escape("needs: " + need.Name), Markup.Escape($"{need.Bytes} ({need.Note})"));
        if (check.Needs.Count > 0) table.AddRow("needs in all", Markup.Escape(check.Required.ToString()));
        console.Write(table);
        if (check.Leftovers.Count > 0) console.Write(LeftoverRendering.Table(check.Leftovers));
        foreach (string w in check.Warnings) io.Errors.MarkupLineInterpolated($"[yellow]warning:[/] {w}");
        foreach (string p in check.Problems) io.Errors.MarkupLineInterpolated($"[red]problem:[/] {p}");
        // The label is markup and the message is text: an interpolated hole is escaped, so the label must not be one.
        if (decision?.Message is { } message)
            io.Errors.MarkupLine((decision.Failed ? "[red]error:[/] " : "[yellow]fallback:[/] ") + Markup.Escape(message));
        else if (check.Usable)
            console.MarkupLine("[green]Usable[/] for NVMe offload. Only `aios calibrate` measures its speed.");
    }
}

using System.CommandLine;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using AiOs.Planner.Engine.Probes;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary><c>aios doctor [--nvme-path DIR] [--json]</c>: can this machine run the engine, and what to fix if not.</summary>
public static class DoctorCommand
{
    /// <summary>Indented, and quotes and '+' left as they are: the fixes are shell commands meant to be read.</summary>
    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Create(CliIo io)
    {
        var nvmePath = new Option<string>("--nvme-path")
        {
            Description = "Offload folder to check for O_DIRECT and free space (created if missing)",
            DefaultValueFactory = _ => ".",
        };
        var json = new Option<bool>("--json") { Description = "Print one JSON document on stdout" };
        var command = new Command("doctor", "Check this machine: .NET, TorchSharp, CUDA driver and libtorch, NVRTC, O_DIRECT on the offload folder, free RAM and disk.")
        {
            nvmePath, json,
        };
        command.SetAction(r =>
        {
            DoctorReport report = Doctor.Run(new DoctorOptions(r.GetValue(nvmePath)!));
            if (r.GetValue(json)) io.Stdout.Write(Json(report).ToJsonString(JsonOptions) + "\n");
            else Render(io.Console, report);
            return report.Failed ? ExitCodes.Infeasible : ExitCodes.Ok;
        });
        return command;
    }

    private static string Word(CheckStatus s) => s switch
    {
        CheckStatus.Pass => "pass",
        CheckStatus.Warn => "warn",
        _ => "fail",
    };

    private static JsonObject Json(DoctorReport report) => new()
    {
        ["ok"] = !report.Failed,
        ["offload_path"] = report.OffloadPath,
        ["checks"] = new JsonArray(report.Checks.Select(c => (JsonNode)new JsonObject
        {
            ["name"] = c.Name, ["status"] = Word(c.Status), ["detail"] = c.Detail, ["fix"] = c.Fix,
        }).ToArray()),
    };

    private static void Render(IAnsiConsole console, DoctorReport report)
    {
        var table = new Table().AddColumns("check", "", "found");
        foreach (DoctorCheck c in report.Checks)
        {
            string colour = c.Status switch { CheckStatus.Pass => "green", CheckStatus.Warn => "yellow", _ => "red" };
            table.AddRow(new Markup(Markup.Escape(c.Name)), new Markup($"[{colour}]{Word(c.Status)}[/]"), new Markup(Markup.Escape(c.Detail)));
        }
        console.Write(table);
        foreach (DoctorCheck c in report.Checks.Where(c => c.Fix is not null))
        {
            if (c.Status == CheckStatus.Fail) console.MarkupLineInterpolated($"[red]fix[/] {c.Name}: {c.Fix}");
            else console.MarkupLineInterpolated($"[yellow]to do[/] {c.Name}: {c.Fix}");
        }
        if (report.Failed) console.MarkupLine("[red]Something failed[/]: fix it before training (exit code 3).");
        else console.MarkupLine("[green]Nothing failed.[/]");
    }
}

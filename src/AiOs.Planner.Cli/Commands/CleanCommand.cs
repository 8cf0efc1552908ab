using System.CommandLine;
using System.Text.Json.Nodes;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Storage;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary><c>aios clean PATH [--dry-run]</c>: removes the stale swap folders and scratch files of dead runs from an offload folder.</summary>
public static class CleanCommand
{
    /// <summary>The command, writing through <paramref name="io"/>.</summary>
    public static Command Create(CliIo io)
    {
        var path = new Argument<string>("path") { Description = "Offload folder (the --nvme-offload-path / nvme_path of earlier runs)" };
        var dryRun = new Option<bool>("--dry-run") { Description = "Only list what would be removed" };
        var json = new Option<bool>("--json") { Description = "Print one JSON document on stdout" };
        var command = new Command("clean",
            "Remove swap folders (aios-<run id>/) and probe or calibration files left by runs that are no longer running. "
            + "Only the tool's own (owner record or scratch name), only of dead processes on this host; links are never followed.")
        {
            path, dryRun, json,
        };
        command.SetAction(r =>
        {
            string folder = Path.GetFullPath(r.GetValue(path)!);
            if (NoFollowFs.LinkRefusal(folder, "The offload folder") is { } link)
            {
                io.Errors.MarkupLineInterpolated($"[red]error:[/] {link}");
                return ExitCodes.Usage;
            }
            if (!Directory.Exists(folder))
            {
                io.Errors.MarkupLineInterpolated($"[red]error:[/] {folder} is not a folder; give the offload folder that holds the aios-<run id> folders.");
                return ExitCodes.Usage;
            }
            var outcomes = Leftovers.Clean(folder, r.GetValue(dryRun));
            if (r.GetValue(json)) io.Stdout.Write(DeepSpeedConfig.ToJson(Json(folder, r.GetValue(dryRun), outcomes)));
            else Render(io.Console, folder, r.GetValue(dryRun), outcomes);
            bool failed = outcomes.Any(o => o.Item.Stale && !o.Removed && !r.GetValue(dryRun));
            return failed ? ExitCodes.Failure : ExitCodes.Ok;
        });
        return command;
    }

    private static JsonObject Json(string folder, bool dryRun, IReadOnlyList<CleanOutcome> outcomes) => new()
    {
        ["path"] = folder,
        ["dry_run"] = dryRun,
        ["items"] = new JsonArray(outcomes.Select(o =>
        {
            var item = LeftoverRendering.Json(o.Item);
            item["removed"] = o.Removed;
            item["outcome"] = o.Note;
            return (JsonNode)item;
        }).ToArray()),
    };

    private static void Render(IAnsiConsole console, string folder, bool dryRun, IReadOnlyList<CleanOutcome> outcomes)
    {
        if (outcomes.Count == 0)
        {
            console.MarkupLineInterpolated($"Nothing of aios's in {folder}.");
            return;
        }
        var table = new Table().AddColumns("name", "kind", "size", "run id", "pid", "state", "outcome");
        foreach (var o in outcomes)
        {
            var row = LeftoverRendering.Cells(o.Item).Append(Markup.Escape(o.Note)).ToArray();
            table.AddRow(row);
        }
        console.Write(table);
        int stale = outcomes.Count(o => o.Item.Stale), removed = outcomes.Count(o => o.Removed);
        if (dryRun) console.MarkupLineInterpolated($"{stale} stale item(s) would be removed; run without --dry-run to remove them.");
        else console.MarkupLineInterpolated($"Removed {removed} of {stale} stale item(s); live, foreign and linked entries were left alone.");
    }
}

/// <summary>How leftovers are shown by <c>check-nvme</c> and <c>clean</c>.</summary>
internal static class LeftoverRendering
{
    public static string[] Cells(Leftover l) =>
    [
        Markup.Escape(Path.GetFileName(l.Path)),
        Markup.Escape(Kind(l.Kind)),
        Markup.Escape(l.Size.ToString()),
        Markup.Escape(l.RunId ?? "-"),
        l.Pid?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-",
        l.State switch
        {
            OwnerState.Dead => "[yellow]stale[/]",
            OwnerState.Alive => "[green]running[/]",
            OwnerState.Unknown => "unknown",
            _ => "not ours",
        },
    ];

    public static Table Table(IReadOnlyList<Leftover> leftovers)
    {
        var table = new Table().Title("aios leftovers here").AddColumns("name", "kind", "size", "run id", "pid", "state", "note");
        foreach (var l in leftovers) table.AddRow(Cells(l).Append(Markup.Escape(l.Note)).ToArray());
        return table;
    }

    public static JsonObject Json(Leftover l) => NvmeCheckDocument.Leftover(l);

    public static JsonArray Json(IReadOnlyList<Leftover> leftovers) => new(leftovers.Select(l => (JsonNode)Json(l)).ToArray());

    private static string Kind(ScratchKind kind) => NvmeCheckDocument.KindName(kind);
}

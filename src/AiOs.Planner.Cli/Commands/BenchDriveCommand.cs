using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using AiOs.Planner.Calibration;
using AiOs.Planner.Calibration.Benchmarks;
using AiOs.Planner.Calibration.Drive;
using AiOs.Planner.Cli.Rendering;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Units;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary><c>aios bench-drive</c>: sequential read and write of this tool's direct-I/O engine against fio on the same file.</summary>
public static class BenchDriveCommand
{
    /// <summary>The command, writing through <paramref name="io"/>.</summary>
    public static Command Create(CliIo io)
    {
        var path = new Option<string>("--path") { Description = "Folder on the drive to test (a temporary file is created and deleted)", Required = true };
        var block = SizeOption.Create("--block-size", "Bytes per request (default 1M)", Bytes.FromMiB(1));
        var size = SizeOption.Create("--run-size", "Bytes each run moves, in its own region of the test file (default 1G)", Bytes.FromGiB(1));
        var depth = new Option<int>("--queue-depth") { Description = "Requests in flight (default 8)", DefaultValueFactory = _ => 8 };
        var repeats = new Option<int>("--repeats") { Description = "Runs per tool and direction, alternating tools (default 3)", DefaultValueFactory = _ => 3 };
        var singleSubmit = new Option<bool>("--single-submit") { Description = "This engine calls io_submit once per request (fio's default); otherwise ready requests go in one call" };
        var noFio = new Option<bool>("--no-fio") { Description = "Measure only this tool" };
        var json = new Option<bool>("--json") { Description = "Print one JSON document on stdout" };
        var command = new Command("bench-drive", "Compare this tool's direct-I/O throughput with fio (libaio, direct=1) on one file: sequential read and write.")
        {
            path, block, size, depth, repeats, singleSubmit, noFio, json,
        };
        command.SetAction(async (r, ct) =>
        {
            var options = new SequentialBenchmarkOptions
            {
                Directory = r.GetValue(path)!,
                BlockSize = r.GetValue(block),
                RunSize = r.GetValue(size),
                QueueDepth = r.GetValue(depth),
                Repeats = r.GetValue(repeats),
                WithFio = !r.GetValue(noFio),
                SingleSubmit = r.GetValue(singleSubmit),
            };
            try
            {
                var progress = new Progress<string>(line => { if (!r.GetValue(json)) io.Console.MarkupLineInterpolated($"[grey]{line}[/]"); });
                var report = await SequentialBenchmark.RunAsync(options, progress, ct).ConfigureAwait(false);
                if (r.GetValue(json)) io.Stdout.Write(DeepSpeedConfig.ToJson(Json(report)));
                else Render(io.Console, report);
                return ExitCodes.Ok;
            }
            catch (CalibrationException e)
            {
                io.Errors.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
                return ExitCodes.Usage;
            }
            catch (OperationCanceledException)
            {
                io.Errors.MarkupLine("[yellow]interrupted[/]; the test file was removed.");
                return ExitCodes.Interrupted;
            }
        });
        return command;
    }

    private static JsonObject Json(SequentialBenchmarkReport report) => new()
    {
        ["block_size"] = report.Options.BlockSize.Value,
        ["queue_depth"] = report.Options.QueueDepth,
        ["single_submit"] = report.Options.SingleSubmit,
        ["run_size"] = report.Options.RunSize.Value,
        ["file_size"] = report.FileSize.Value,
        ["fio_version"] = report.FioVersion,
        ["paired_ratio_read"] = report.PairedRatio(IoDirection.Read),
        ["paired_ratio_write"] = report.PairedRatio(IoDirection.Write),
        ["paired_ratios_read"] = new JsonArray(report.PairedRatios(IoDirection.Read).Select(x => (JsonNode)Math.Round(x, 4)).ToArray()),
        ["paired_ratios_write"] = new JsonArray(report.PairedRatios(IoDirection.Write).Select(x => (JsonNode)Math.Round(x, 4)).ToArray()),
        ["fio_commands"] = new JsonArray(report.FioCommands.Select(c => (JsonNode)JsonValue.Create(c)!).ToArray()),
        ["runs"] = new JsonArray(report.Runs.Select(x => (JsonNode)new JsonObject
        {
            ["tool"] = x.Tool, ["direction"] = x.Direction.ToString().ToLowerInvariant(), ["run"] = x.Repeat, ["offset"] = x.Offset.Value, ["gbps"] = Math.Round(x.Rate.GBps, 4),
        }).ToArray()),
    };

    private static void Render(IAnsiConsole console, SequentialBenchmarkReport report)
    {
        var table = new Table().AddTextColumns("direction", "tool", "runs (GB/s)", "median", "spread", "aios / fio: paired median [quartiles]");
        foreach (var direction in new[] { IoDirection.Write, IoDirection.Read })
        {
            foreach (string tool in new[] { SequentialBenchmark.AiosTool, SequentialBenchmark.FioTool })
            {
                var runs = report.Runs.Where(x => x.Tool == tool && x.Direction == direction).Select(x => x.Rate.GBps.ToString("0.000", CultureInfo.InvariantCulture)).ToList();
                if (runs.Count == 0) continue;
                var median = report.Median(tool, direction)!.Value;
                string ratio = tool == SequentialBenchmark.AiosTool && report.PairedRatio(direction) is { } q && report.PairedRatioQuartiles(direction) is { } iq
                    ? string.Create(CultureInfo.InvariantCulture, $"{q:0.000} [{iq.Low:0.00}–{iq.High:0.00}]")
                    : "";
                table.AddTextRow(direction.ToString().ToLowerInvariant(), tool, string.Join("  ", runs), median.GBps.ToString("0.000", CultureInfo.InvariantCulture),
                    report.Spread(tool, direction).ToString("P0", CultureInfo.InvariantCulture), ratio);
            }
        }
        console.Write(table);
        foreach (string c in report.FioCommands) console.MarkupLineInterpolated($"[grey]{c}[/]");
    }
}

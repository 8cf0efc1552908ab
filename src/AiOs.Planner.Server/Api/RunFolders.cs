using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Records;
using AiOs.Planner.Reports;

namespace AiOs.Planner.Server.Api;

/// <summary>
/// The runs tab's only view of run folders: lists <c>runs/&lt;id&gt;</c>, and turns one folder into the API's run
/// record. Every use of the typed run record (<see cref="RecordedRun"/>) is here, so a typed run record can replace it in one place.
/// </summary>
internal sealed partial class RunFolders(string? root)
{
    private readonly string? _root = root is null ? null : Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));

    /// <summary><c>GET /api/runs</c>: one entry per folder holding metrics.jsonl, newest first.</summary>
    public string List()
    {
        var runs = new JsonArray();
        if (_root is not null && Directory.Exists(_root))
            foreach (var dir in new DirectoryInfo(_root).EnumerateDirectories().Where(d => d.LinkTarget is null && IdPattern().IsMatch(d.Name))
                         .Where(d => File.Exists(Path.Combine(d.FullName, "metrics.jsonl"))).OrderByDescending(d => d.LastWriteTimeUtc))
                runs.Add(new JsonObject { ["id"] = dir.Name, ["modified"] = dir.LastWriteTimeUtc.ToString("O") });
        return DeepSpeedConfig.ToJson(new JsonObject { ["runs_folder"] = _root, ["runs"] = runs });
    }

    /// <summary><c>GET /api/runs/{id}</c>: the run's steps, its prediction and the predicted-vs-measured rows.</summary>
    public string Run(string id)
    {
        var run = RecordedRun.Load(Folder(id));
        var comparison = RunComparison.Of(run);
        var doc = new JsonObject
        {
            ["id"] = id,
            ["schema"] = run.Schema,
            ["tokens_per_s"] = Finite(run.TokensPerSecond),
            ["predicted"] = run.Prediction?.Step is { } p ? new JsonObject
            {
                ["time_s"] = p.TimeS, ["forward_s"] = p.Phases.ForwardS, ["backward_s"] = p.Phases.BackwardS,
                ["optimizer_s"] = p.Phases.OptimizerS, ["bottleneck"] = p.Bottleneck,
            } : null,
            ["steps"] = new JsonArray(run.Steps.Select(s => (JsonNode)new JsonObject
            {
                ["step"] = s.Step, ["loss"] = Finite(s.Loss), ["wall_ms"] = s.WallMs, ["forward_ms"] = s.ForwardMs, ["backward_ms"] = s.BackwardMs,
                ["optimizer_ms"] = s.OptimizerMs, ["io_stall_ms"] = s.IoStallMs, ["tokens_per_s"] = s.TokensPerSecond,
                ["nvme_read_gbps"] = s.NvmeReadGBps, ["nvme_write_gbps"] = s.NvmeWriteGBps, ["peak_resident_bytes"] = s.PeakResidentBytes,
                ["peak_device_bytes"] = s.PeakDeviceBytes, ["pinned_bytes"] = s.PinnedBytes, ["nvme_swap_bytes"] = s.NvmeSwapBytes,
            }).ToArray()),
            ["comparison"] = new JsonArray(comparison.Rows.Select(r => (JsonNode)new JsonObject
            {
                ["quantity"] = r.Quantity, ["predicted"] = r.Predicted, ["measured"] = r.Measured, ["unit"] = r.Unit, ["error"] = r.Error,
            }).ToArray()),
            ["tiers"] = new JsonArray(comparison.Tiers.Select(t => (JsonNode)new JsonObject
            {
                ["tier"] = t.Tier, ["predicted_as"] = t.PredictedAs, ["measured_as"] = t.MeasuredAs,
                ["predicted_bytes"] = t.PredictedBytes, ["measured_bytes"] = t.MeasuredBytes, ["error"] = t.Error,
            }).ToArray()),
            ["operations"] = new JsonArray(comparison.Operations.Select(o => (JsonNode)new JsonObject
            {
                ["operation"] = o.Operation, ["resource"] = o.Resource, ["predicted_ms"] = o.PredictedMs, ["measured_ms"] = o.MeasuredMs, ["error"] = o.Error,
            }).ToArray()),
            ["spread"] = comparison.SpreadLine,
            ["caveat"] = comparison.Warning,
            ["settings"] = run.Settings is null ? null : JsonSerializer.SerializeToNode(run.Settings, RecordSchema.WriteOptions),
            ["warnings"] = new JsonArray(run.Warnings.Select(w => (JsonNode)JsonValue.Create(w)!).ToArray()),
        };
        return DeepSpeedConfig.ToJson(doc);
    }

    /// <summary><c>GET /api/runs/{id}/report</c>: the HTML report <c>aios report</c> writes, figures inline.</summary>
    public string Report(string id)
    {
        var run = RecordedRun.Load(Folder(id));
        string scratch = Path.Combine(Path.GetTempPath(), "aios-serve-report-" + Guid.NewGuid().ToString("N"));
        try
        {
            return File.ReadAllText(HtmlReport.Write(run, scratch));
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }

    /// <summary>The run's metrics.jsonl, for the live view (lines appended while a run trains).</summary>
    public string MetricsFile(string id) => Path.Combine(Folder(id), "metrics.jsonl");

    /// <summary>The folder of run <paramref name="id"/>: one plain name inside the runs folder, never a link.</summary>
    private string Folder(string id)
    {
        if (_root is null) throw new DescriptionException("This server has no runs folder: start `aios serve --runs DIR` (the folder `aios train` writes runs/<id> into).");
        if (!IdPattern().IsMatch(id)) throw new DescriptionException($"'{id}' is not a run id (letters, digits, '.', '_' and '-', not starting with '.').");
        var dir = new DirectoryInfo(Path.Combine(_root, id));
        if (dir.LinkTarget is not null) throw new DescriptionException($"Run folder {dir.FullName} is a symbolic link; the server does not follow links.");
        if (!dir.Exists) throw new RunNotFoundException($"No run '{id}' in {_root}.");
        return dir.FullName;
    }

    private static double? Finite(double v) => double.IsFinite(v) ? v : null;

    [GeneratedRegex("^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")]
    private static partial Regex IdPattern();
}

/// <summary>A run id that names no folder (HTTP 404).</summary>
internal sealed class RunNotFoundException(string message) : Exception(message);

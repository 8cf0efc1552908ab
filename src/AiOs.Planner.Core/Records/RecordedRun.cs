using System.Text.Json;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Measurement;

namespace AiOs.Planner.Records;

/// <summary>
/// A run folder read back as the typed run record (the read-only result every view takes, like BenchmarkDotNet's <c>Summary</c>):
/// <c>settings.json</c> (<see cref="RunSettingsRecord"/>), <c>metrics.jsonl</c> (<see cref="StepMetrics"/>), <c>trace.jsonl</c>
/// (<see cref="SpanRecord"/>), <c>summary.json</c> (<see cref="RunSummary"/>), and beside them the prediction the run was started
/// with (<c>prediction.json</c>, a <see cref="PlanRecord"/>; <c>predicted-timeline.jsonl</c>) and the profile (<c>profile.json</c>).
/// Missing optional files leave their parts out; a folder without <c>metrics.jsonl</c> is not a run.
/// </summary>
public sealed record RecordedRun
{
    public const string SettingsFile = "settings.json";
    public const string MetricsFile = "metrics.jsonl";
    public const string TraceFile = "trace.jsonl";
    public const string SummaryFile = "summary.json";
    public const string PredictionFile = "prediction.json";
    public const string TimelineFile = "predicted-timeline.jsonl";
    public const string ProfileFile = "profile.json";

    /// <summary>The run folder (full path).</summary>
    public required string Directory { get; init; }
    /// <summary>The folder's run-record schema (from <c>settings.json</c>, else <c>summary.json</c>; 0 for a folder older than the field).</summary>
    public int Schema { get; init; }
    /// <summary>Every measured step, in order.</summary>
    public required IReadOnlyList<StepMetrics> Steps { get; init; }
    /// <summary>Every measured span.</summary>
    public IReadOnlyList<SpanRecord> MeasuredSpans { get; init; } = [];
    /// <summary>The spans of the predicted step (one step).</summary>
    public IReadOnlyList<SpanRecord> PredictedSpans { get; init; } = [];
    /// <summary>The predicted memory levels of each tier across the step.</summary>
    public IReadOnlyList<MemoryLevel> PredictedMemory { get; init; } = [];
    /// <summary>The prediction the run was started with; null when it has none.</summary>
    public PlanRecord? Prediction { get; init; }
    public RunSettingsRecord? Settings { get; init; }
    public RunSummary? Summary { get; init; }
    public HardwareProfile? Profile { get; init; }
    /// <summary>What loading skipped and why (a cut-off last line of a JSON-lines file); empty when nothing was.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>The steps the means are taken over: after the first, with a finite loss (<see cref="StepStatistics.Steady{T}"/>).</summary>
    public IReadOnlyList<StepMetrics> SteadySteps => StepStatistics.Steady(Steps, s => s.Finite);

    /// <summary>Total tokens ÷ total wall time of the steady steps: the same figure as <c>summary.json</c>'s <c>tokens_per_second</c>.</summary>
    public double TokensPerSecond => StepStatistics.TokensPerSecond(Steps.Select(s => s.Sample).ToList());

    /// <summary>Min, p10, p50, p90 and max wall time of the steady steps; null without one.</summary>
    public StepSpread? Spread => StepStatistics.Spread(Steps.Select(s => s.Sample).ToList());

    /// <summary>
    /// Why this run's times are unfit to compare with a prediction: the spread of its steps, and other processes' CPU time the
    /// summary recorded (the load averages in a summary without it).
    /// </summary>
    public IReadOnlyList<string> TimingCaveats =>
        StepStatistics.Caveats(Spread, Summary?.CpuUse, Summary?.LoadAverageStart, Summary?.LoadAverageEnd, Summary?.LogicalCores ?? 0);

    /// <summary>Loads a run folder; a clear error when it is not one, when a file is damaged, or when it was written by a newer schema.</summary>
    /// <exception cref="DescriptionException">The folder is not a readable run (the message names the file and what to do).</exception>
    public static RecordedRun Load(string directory)
    {
        string dir = Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(dir))
            throw new DescriptionException($"Run folder {dir} does not exist. Give the folder `aios train` wrote (runs/<id>).") { File = dir };
        string metrics = Path.Combine(dir, MetricsFile);
        if (!File.Exists(metrics))
            throw new DescriptionException($"{dir} has no metrics.jsonl, so it is not a run folder (or no step finished). Give the folder `aios train` wrote.") { File = dir };
        // The schema first: a newer folder is refused by its version, not by whichever field it changed.
        var settings = ReadVersioned<RunSettingsRecord>(Path.Combine(dir, SettingsFile), out int settingsSchema);
        var summary = ReadVersioned<RunSummary>(Path.Combine(dir, SummaryFile), out int summarySchema);
        var warnings = new List<string>();
        var timeline = ReadTimeline(Path.Combine(dir, TimelineFile), warnings);
        var steps = JsonLines.Read<StepMetrics>(metrics, warnings, _ => null).Select(s => s.Normalised()).ToList();
        string trace = Path.Combine(dir, TraceFile);
        var measured = File.Exists(trace) ? JsonLines.Read<SpanRecord>(trace, warnings, SpanRecord.Missing) : [];
        string profile = Path.Combine(dir, ProfileFile);
        return new RecordedRun
        {
            Directory = dir,
            Schema = Math.Max(settingsSchema, summarySchema),
            Steps = steps,
            MeasuredSpans = measured,
            PredictedSpans = timeline.Spans,
            PredictedMemory = timeline.Memory,
            Prediction = ReadPlan(Path.Combine(dir, PredictionFile)),
            Settings = settings,
            Summary = summary,
            Profile = File.Exists(profile) ? ProfileCatalog.LoadFile(profile) : null,
            Warnings = warnings,
        };
    }

    /// <summary>Spans and memory levels of a predicted timeline; none when the file is absent. A cut-off last line goes to <paramref name="warnings"/>.</summary>
    public static (IReadOnlyList<SpanRecord> Spans, IReadOnlyList<MemoryLevel> Memory) ReadTimeline(string path, ICollection<string> warnings)
    {
        if (!File.Exists(path)) return ([], []);
        var lines = JsonLines.Read<TimelineLine>(path, warnings, l => l.Missing());
        return (lines.Where(l => !l.IsMemory).Select(l => l.ToSpan()).ToList(),
            lines.Where(l => l.IsMemory).Select(l => new MemoryLevel(l.Tier!, l.TimeNs, l.Bytes)).ToList());
    }

    /// <summary>A <c>prediction.json</c> (an <c>aios plan --json</c> document); null when absent.</summary>
    public static PlanRecord? ReadPlan(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            return JsonSerializer.Deserialize<PlanRecord>(File.ReadAllText(path), PlanRecordJson.ReadOptions)
                ?? throw new DescriptionException($"{path}: the file holds JSON null; expected an `aios plan --json` document.") { File = path };
        }
        catch (JsonException e)
        {
            throw NotValid(path, e);
        }
    }

    /// <summary>A whole run file whose <c>schema</c> is checked before the rest is read; null when absent.</summary>
    private static T? ReadVersioned<T>(string path, out int schema) where T : class
    {
        schema = 0;
        if (!File.Exists(path)) return null;
        try
        {
            string text = File.ReadAllText(path);
            using (var doc = JsonDocument.Parse(text, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }))
            {
                if (doc.RootElement.ValueKind != JsonValueKind.Object)
                    throw new DescriptionException($"{path}: not a JSON object; the run folder's {Path.GetFileName(path)} is damaged.") { File = path };
                if (doc.RootElement.TryGetProperty("schema", out var v) && v.TryGetInt32(out int s)) schema = s;
            }
            RecordSchema.Check(schema, path);
            return JsonSerializer.Deserialize<T>(text, RecordSchema.ReadOptions);
        }
        catch (JsonException e)
        {
            throw NotValid(path, e);
        }
    }

    private static DescriptionException NotValid(string path, JsonException e) =>
        new($"{path}, line {(e.LineNumber ?? 0) + 1}: not a valid run file ({e.Message.Split(" LineNumber:")[0]})", e) { File = path };
}

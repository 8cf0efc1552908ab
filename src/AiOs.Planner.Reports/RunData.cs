using System.Text.Json;
using System.Text.Json.Nodes;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Measurement;

namespace AiOs.Planner.Reports;

/// <summary>One span of a timeline, predicted or measured (the shape both <c>trace.jsonl</c> and <c>--timeline</c> write).</summary>
public sealed record TimelineSpan(string Resource, string Operation, int Layer, int MicroBatch, int Step, long StartNs, long EndNs);

/// <summary>A memory tier's level from a predicted timeline.</summary>
public sealed record MemoryLevel(string Tier, long TimeNs, long Bytes);

/// <summary>
/// One measured step, from <c>metrics.jsonl</c>. Loss is NaN when the file holds <c>null</c> (not finite) or nothing; Tokens, in
/// older files without the field, is the step's rate × its wall time; NonFinite says what was not finite (the engine's
/// <c>non_finite</c>, or "loss" for a <c>null</c> loss) and is null for a sound step.
/// </summary>
public sealed record StepRecord(int Step, double Loss, double WallMs, double ForwardMs, double BackwardMs, double OptimizerMs, double IoStallMs,
    double TokensPerSecond, double NvmeReadGBps, double NvmeWriteGBps, long PeakResidentBytes, long Tokens = 0, string? NonFinite = null)
{
    /// <summary>False for a step whose loss or gradients were not finite: its update was not applied, and it stays out of every mean.</summary>
    public bool Finite => NonFinite is null;

    /// <summary>The step as <see cref="StepStatistics"/> takes it.</summary>
    public StepSample Sample => new(WallMs, Tokens, Finite);
}

/// <summary>Predicted seconds of a step and its phases, from <c>prediction.json</c> (an <c>aios plan --json</c> document).</summary>
public sealed record PredictedStep(double TimeSeconds, double ForwardSeconds, double BackwardSeconds, double OptimizerSeconds, string Bottleneck);

/// <summary>
/// Everything a report draws from one run folder: <c>settings.json</c>, <c>metrics.jsonl</c>, <c>trace.jsonl</c>,
/// <c>summary.json</c>, and beside them the prediction the run was started with (<c>prediction.json</c>,
/// <c>predicted-timeline.jsonl</c>) and the profile (<c>profile.json</c>). Missing optional files leave their
/// parts of the report out; a folder without <c>metrics.jsonl</c> is not a run.
/// </summary>
public sealed record RunData
{
    public required string Directory { get; init; }
    public required IReadOnlyList<StepRecord> Steps { get; init; }
    public IReadOnlyList<TimelineSpan> MeasuredSpans { get; init; } = [];
    public IReadOnlyList<TimelineSpan> PredictedSpans { get; init; } = [];
    public IReadOnlyList<MemoryLevel> PredictedMemory { get; init; } = [];
    public PredictedStep? Predicted { get; init; }
    /// <summary>The whole <c>prediction.json</c> document, when the run has one.</summary>
    public JsonObject? Prediction { get; init; }
    public JsonObject? Settings { get; init; }
    public JsonObject? Summary { get; init; }
    public HardwareProfile? Profile { get; init; }
    /// <summary>What loading skipped and why (a cut-off last line of <c>metrics.jsonl</c> or <c>trace.jsonl</c>); empty when nothing was.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>The steps the means are taken over: after the first, with a finite loss (<see cref="StepStatistics.Steady{T}"/>).</summary>
    public IReadOnlyList<StepRecord> SteadySteps => StepStatistics.Steady(Steps, s => s.Finite);

    /// <summary>Total tokens ÷ total wall time of the steady steps: the same figure as <c>summary.json</c>'s <c>tokens_per_second</c>.</summary>
    public double TokensPerSecond => StepStatistics.TokensPerSecond(Steps.Select(s => s.Sample).ToList());

    /// <summary>Min, p10, p50, p90 and max wall time of the steady steps; null without one.</summary>
    public StepSpread? Spread => StepStatistics.Spread(Steps.Select(s => s.Sample).ToList());

    /// <summary>
    /// Why this run's times are unfit to compare with a prediction (<see cref="StepStatistics.Caveats"/>): the spread of
    /// its steps, and the load averages <c>summary.json</c> recorded; empty when neither says so.
    /// </summary>
    public IReadOnlyList<string> TimingCaveats =>
        StepStatistics.Caveats(Spread, OptionalNum(Summary, "load_average_start"), OptionalNum(Summary, "load_average_end"), (int)(OptionalNum(Summary, "logical_cores") ?? 0));

    /// <summary>Loads a run folder; a clear error when it is not one.</summary>
    public static RunData Load(string directory)
    {
        string dir = Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(dir))
            throw new DescriptionException($"Run folder {dir} does not exist. Give the folder `aios train` wrote (runs/<id>).") { File = dir };
        string metrics = Path.Combine(dir, "metrics.jsonl");
        if (!File.Exists(metrics))
            throw new DescriptionException($"{dir} has no metrics.jsonl, so it is not a run folder (or no step finished). Give the folder `aios train` wrote.") { File = dir };
        var warnings = new List<string>();
        var timeline = ReadTimeline(Path.Combine(dir, "predicted-timeline.jsonl"), warnings);
        var steps = JsonLines.Read(metrics, warnings).Select(l => JsonLines.Field(metrics, l.Line, () => ToStep(l.Value))).ToList();
        var measured = ReadTimeline(Path.Combine(dir, "trace.jsonl"), warnings).Spans;
        string profile = Path.Combine(dir, "profile.json");
        var prediction = ReadObject(Path.Combine(dir, "prediction.json"));
        return new RunData
        {
            Directory = dir,
            Steps = steps,
            MeasuredSpans = measured,
            PredictedSpans = timeline.Spans,
            PredictedMemory = timeline.Memory,
            Predicted = ReadPrediction(prediction),
            Prediction = prediction,
            Settings = ReadObject(Path.Combine(dir, "settings.json")),
            Summary = ReadObject(Path.Combine(dir, "summary.json")),
            Profile = File.Exists(profile) ? ProfileCatalog.LoadFile(profile) : null,
            Warnings = warnings,
        };
    }

    private static StepRecord ToStep(JsonObject o)
    {
        double wallMs = Num(o, "wall_ms"), rate = Num(o, "tokens_per_second");
        // The engine writes a non-finite loss as null: missing, not zero, and the step is kept out of the means. A file
        // without the field at all (hand-made, older) says nothing about finiteness, so only its loss is unknown.
        double loss = OptionalNum(o, "loss") ?? double.NaN;
        string? nonFinite = o["non_finite"] is JsonValue v && v.TryGetValue(out string? what) ? what
            : o.ContainsKey("loss") && o["loss"] is null ? "loss" : null;
        long tokens = OptionalNum(o, "tokens") is { } t ? (long)t : (long)Math.Round(rate * wallMs / 1e3);
        return new StepRecord(Int(o, "step"), loss, wallMs, Num(o, "forward_ms"), Num(o, "backward_ms"), Num(o, "optimizer_ms"),
            Num(o, "io_stall_ms"), rate, Num(o, "nvme_read_g_bps", "nvme_read_gbps"), Num(o, "nvme_write_g_bps", "nvme_write_gbps"),
            (long)Num(o, "peak_resident_bytes"), tokens, nonFinite);
    }

    /// <summary>Spans and memory levels of a timeline file; none when the file is absent. A cut-off last line goes to <paramref name="warnings"/>.</summary>
    internal static (List<TimelineSpan> Spans, List<MemoryLevel> Memory) ReadTimeline(string path, ICollection<string> warnings)
    {
        var spans = new List<TimelineSpan>();
        var memory = new List<MemoryLevel>();
        if (!File.Exists(path)) return (spans, memory);
        foreach (var (line, o) in JsonLines.Read(path, warnings))
            JsonLines.Field(path, line, () => Add(o, spans, memory));
        return (spans, memory);
    }

    /// <summary>Adds one timeline line: a memory level, or a span (lines without a type).</summary>
    private static bool Add(JsonObject o, List<TimelineSpan> spans, List<MemoryLevel> memory)
    {
        string type = o["type"]?.GetValue<string>() ?? "span";
        if (type == "memory")
        {
            memory.Add(new MemoryLevel(o["tier"]!.GetValue<string>(), (long)Num(o, "time_ns"), (long)Num(o, "bytes")));
            return true;
        }
        spans.Add(new TimelineSpan(o["resource"]!.GetValue<string>(), o["operation"]!.GetValue<string>(), Int(o, "layer"), Int(o, "micro_batch"),
            Int(o, "step"), (long)Num(o, "start_ns"), (long)Num(o, "end_ns")));
        return true;
    }

    private static PredictedStep? ReadPrediction(JsonObject? prediction)
    {
        if (prediction?["step"] is not JsonObject step) return null;
        var phases = step["phases"]!.AsObject();
        return new PredictedStep(Num(step, "time_s"), Num(phases, "forward_s"), Num(phases, "backward_s"), Num(phases, "optimizer_s"),
            step["bottleneck"]?.GetValue<string>() ?? "");
    }

    private static JsonObject? ReadObject(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject;
        }
        catch (JsonException e)
        {
            throw new DescriptionException($"{path}, line {(e.LineNumber ?? 0) + 1}: not valid JSON ({e.Message.Split(" LineNumber:")[0]})", e) { File = path };
        }
    }

    private static double Num(JsonObject o, params string[] names)
    {
        foreach (string name in names)
            if (o[name] is JsonValue v && v.TryGetValue(out double d)) return d;
        return 0;
    }

    private static double? OptionalNum(JsonObject? o, string name) => o?[name] is JsonValue v && v.TryGetValue(out double d) ? d : null;

    private static int Int(JsonObject o, string name) => o[name] is JsonValue v && v.TryGetValue(out int i) ? i : 0;
}

using System.Text.Json;
using System.Text.Json.Nodes;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Optim;
using AiOs.Planner.Records;

namespace AiOs.Planner.Reports;

/// <summary>One run of a comparison, reduced to the figures its table row shows.</summary>
/// <param name="Id">The run's id (settings.json's <c>run_id</c>, else the folder's name).</param>
/// <param name="Directory">The run folder (full path).</param>
/// <param name="Model">The model's name (settings.json), "unknown" without one.</param>
/// <param name="OptimizerState">How Adam's state was stored: <c>fp32</c> or <c>8bit</c>.</param>
/// <param name="Steps">Steps measured (lines of metrics.jsonl).</param>
/// <param name="LastLoss">The last step's loss; NaN when it was not finite.</param>
/// <param name="MeanLoss">Mean loss of the last <see cref="MeanOver"/> finite steps; NaN without one.</param>
/// <param name="MeanOver">How many steps <see cref="MeanLoss"/> averages: <see cref="RunsCompared.LossWindow"/>, or fewer in a shorter run.</param>
/// <param name="MeanLossChange">(this mean − the first run's mean) ÷ the first run's mean; null for the first run or when either mean is not finite.</param>
/// <param name="MedianStepMs">Median wall time of the steps after the first (all steps when there is only one); null without a step.</param>
/// <param name="MedianNvmeBytes">Median NVMe bytes read + written per step after the first; null when the run moved none.</param>
/// <param name="MedianCpuStateBytes">Median host-RAM optimizer-state bytes read + written per step after the first; null when the run moved none.</param>
/// <param name="Seed">The engine's seed; null when settings.json does not record one.</param>
/// <param name="Differing">This run's value of every setting that is not the same in all the runs, by setting name.</param>
public sealed record ComparedRun(
    string Id, string Directory, string Model, string OptimizerState, long? Seed, int Steps, double LastLoss, double MeanLoss, int MeanOver,
    double? MeanLossChange, double? MedianStepMs, long? MedianNvmeBytes, long? MedianCpuStateBytes, IReadOnlyList<KeyValuePair<string, string>> Differing)
{
    /// <summary>The legend's name for the run: its id and its values of the settings that differ.</summary>
    public string Label(int maxSettings = 3)
    {
        if (Differing.Count == 0) return $"{Id} (same settings)";
        string shown = string.Join(", ", Differing.Take(maxSettings).Select(d => $"{d.Key}: {d.Value}"));
        return Differing.Count > maxSettings ? $"{Id} ({shown}, {Differing.Count - maxSettings} more)" : $"{Id} ({shown})";
    }
}

/// <summary>
/// Several runs side by side: the run a report is of first, then each <c>--compare</c> run, with the settings that differ
/// between them and what makes the comparison weak (different models: a note; different seeds: a warning).
/// </summary>
public sealed record RunsCompared(IReadOnlyList<ComparedRun> Runs, IReadOnlyList<RecordedRun> Records, IReadOnlyList<string> Notes, IReadOnlyList<string> Warnings)
{
    /// <summary>Steps at the end of a run whose losses are averaged for the final loss: one step's loss is noisy.</summary>
    public const int LossWindow = 50;

    /// <summary>Settings left out of the difference: they name the run, not what it did.</summary>
    private static readonly HashSet<string> Ignored = ["schema", "run_id", "engine.run_id"];

    /// <summary>
    /// Loads a run folder to compare; a clear error naming the folder and each file it lacks when it is not one.
    /// <paramref name="role"/> says where the folder came from in that error (<c>--compare</c>, <c>RUN_DIR</c>).
    /// </summary>
    /// <exception cref="DescriptionException">The folder is missing, lacks metrics.jsonl or settings.json, or a file in it is damaged.</exception>
    public static RecordedRun Load(string directory, string role = "--compare")
    {
        string dir = Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(dir))
            throw new DescriptionException($"{role} {dir} does not exist. Give a run folder `aios train` wrote (runs/<id>).") { File = dir };
        var missing = new[] { RecordedRun.MetricsFile, RecordedRun.SettingsFile }.Where(f => !File.Exists(Path.Combine(dir, f))).ToList();
        if (missing.Count > 0)
            throw new DescriptionException(
                $"{role} {dir} is not a run folder: it has no {string.Join(" and no ", missing)} (a comparison needs each run's steps and settings). Give a run folder `aios train` wrote (runs/<id>).")
            { File = dir };
        return RecordedRun.Load(dir);
    }

    /// <summary>Compares <paramref name="first"/> (the run the report is of; the percentages are against it) with <paramref name="others"/>.</summary>
    public static RunsCompared Of(RecordedRun first, IReadOnlyList<RecordedRun> others)
    {
        var notes = new List<string>();
        var warnings = new List<string>();
        var records = new List<RecordedRun> { first };
        foreach (var run in others)
        {
            if (records.Any(r => r.Directory == run.Directory)) warnings.Add($"{run.Directory} was given more than once; it is compared once.");
            else records.Add(run);
        }
        var flat = records.Select(Flatten).ToList();
        // Top-level settings first (optimizer_state, seed), nested ones after: the legend shows the first few, and a nested
        // one is often derived from a top-level one (adam.schedule.base_learning_rate from adam.learning_rate).
        var keys = flat.SelectMany(f => f.Keys).Distinct().OrderBy(k => k.Count(c => c == '.')).ThenBy(k => k, StringComparer.Ordinal)
            .Where(k => flat.Select(f => f.GetValueOrDefault(k, "(not set)")).Distinct().Count() > 1).ToList();
        var means = records.Select(MeanLoss).ToList();
        var runs = records.Select((r, i) => Row(r, means[i], i == 0 ? null : Change(means[i].Mean, means[0].Mean),
            keys.Select(k => KeyValuePair.Create(k, flat[i].GetValueOrDefault(k, "(not set)"))).ToList())).ToList();

        var models = runs.Select(r => r.Model).Distinct().ToList();
        if (models.Count > 1)
            notes.Add($"The runs trained different models ({string.Join(", ", models)}): their losses are compared as they are, but they are not the same task's losses.");
        var seeds = runs.Where(r => r.Seed is not null).Select(r => r.Seed).Distinct().ToList();
        if (seeds.Count > 1)
            warnings.Add($"The runs started from different seeds ({string.Join(", ", runs.Select(r => $"{r.Id}: {r.Seed?.ToString() ?? "not recorded"}"))}): a loss difference mixes the seed's noise with the settings'; compare runs trained from one seed (--seed).");
        else if (seeds.Count == 1 && runs.Any(r => r.Seed is null))
            warnings.Add($"Some runs do not record their seed ({string.Join(", ", runs.Where(r => r.Seed is null).Select(r => r.Id))}): the comparison is only meaningful from one seed.");
        return new RunsCompared(runs, records, notes, warnings);
    }

    private static ComparedRun Row(RecordedRun run, (double Mean, int Over) mean, double? change, IReadOnlyList<KeyValuePair<string, string>> differing)
    {
        var settings = run.Settings;
        // The steps after the first: the first carries warm-up (allocation, first reads) in its time and its traffic.
        var later = run.Steps.Count > 1 ? run.Steps.Skip(1).ToList() : run.Steps.ToList();
        long? nvme = MedianBytes(later.Select(s => s.NvmeReadBytes + s.NvmeWrittenBytes));
        long? cpu = MedianBytes(later.Select(s => s.CpuReadBytes + s.CpuWrittenBytes));
        return new ComparedRun(
            settings?.RunId ?? Path.GetFileName(run.Directory), run.Directory,
            settings?.Model.Name ?? run.Summary?.Model ?? "unknown",
            settings?.Settings.OptimizerState.Name() ?? "unknown", Seed(settings), run.Steps.Count,
            run.Steps.Count == 0 ? double.NaN : run.Steps[^1].Loss, mean.Mean, mean.Over, change,
            later.Count == 0 ? null : Median(later.Select(s => s.WallMs)), nvme, cpu, differing);
    }

    /// <summary>Mean loss of the last <see cref="LossWindow"/> finite steps (fewer when the run is shorter), and how many it took.</summary>
    internal static (double Mean, int Over) MeanLoss(RecordedRun run)
    {
        var last = run.Steps.Where(s => double.IsFinite(s.Loss)).TakeLast(LossWindow).ToList();
        return (last.Count == 0 ? double.NaN : last.Average(s => s.Loss), last.Count);
    }

    private static double? Change(double value, double baseline) =>
        double.IsFinite(value) && double.IsFinite(baseline) && baseline != 0 ? (value - baseline) / baseline : null;

    /// <summary>The engine's seed: Core keeps the engine's options as the engine wrote them, so it is read by its name there.</summary>
    private static long? Seed(RunSettingsRecord? settings) =>
        settings?.Engine is { ValueKind: JsonValueKind.Object } engine && engine.TryGetProperty("seed", out var seed) && seed.TryGetInt64(out long value) ? value : null;

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        int n = sorted.Count;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }

    private static long? MedianBytes(IEnumerable<long> values)
    {
        var list = values.ToList();
        return list.Count == 0 || list.All(v => v == 0) ? null : (long)Math.Round(Median(list.Select(v => (double)v)));
    }

    /// <summary>
    /// settings.json as setting name → value, to find what differs: the typed record written back as JSON and walked, so a
    /// setting added later is compared without a change here. The model is its name; the dataset its file name.
    /// </summary>
    internal static Dictionary<string, string> Flatten(RecordedRun run)
    {
        var flat = new Dictionary<string, string>(StringComparer.Ordinal);
        if (run.Settings is not { } settings) return flat;
        var node = JsonSerializer.SerializeToNode(settings with { Dataset = settings.Dataset is { } d ? Path.GetFileName(d) : null }, RecordSchema.WriteOptions)!.AsObject();
        node["model"] = settings.Model.Name;
        Walk(node, "", flat);
        return flat;
    }

    private static void Walk(JsonNode? node, string path, Dictionary<string, string> flat)
    {
        if (node is JsonObject o)
        {
            foreach (var (key, child) in o) Walk(child, path.Length == 0 ? key : $"{path}.{key}", flat);
            return;
        }
        if (Ignored.Contains(path)) return;
        // The settings' and engine's own fields read better without their group's prefix (optimizer_state, seed).
        string name = path.StartsWith("settings.", StringComparison.Ordinal) ? path["settings.".Length..]
            : path.StartsWith("engine.", StringComparison.Ordinal) ? path["engine.".Length..] : path;
        if (flat.ContainsKey(name)) name = path;
        flat[name] = node switch
        {
            null => "null",
            JsonValue v when v.TryGetValue(out string? s) => s,
            // A number by its value: 1e-08 and 1E-08 are one setting.
            JsonValue v when v.GetValueKind() == JsonValueKind.Number => v.GetValue<double>().ToString(System.Globalization.CultureInfo.InvariantCulture),
            _ => node.ToJsonString(),
        };
    }
}

using System.Text.Json.Nodes;
using AiOs.Planner.Calibration.Learning;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Server.Api;

/// <summary>
/// The library calls behind <c>aios plan</c> and <c>aios ds-config</c>, for a request whose settings are a settings
/// file's content: each returns the text the CLI prints with <c>--json</c> (or to stdout) for
/// <c>--settings FILE</c>, and throws <see cref="DescriptionException"/> with the CLI's message where the CLI refuses.
/// </summary>
internal sealed class PlannerApi(PathRoots nvmeRoots)
{
    /// <summary>The defaults of a plan without settings (the CLI with no setting flags).</summary>
    private static readonly TrainingSettings Defaults = new();

    /// <summary>
    /// The settings the CLI builds from <c>--settings FILE</c> (fields checked, stage kept as given, then checked
    /// against the model) or, without settings, from no flags at all (sequence length capped at the model's).
    /// </summary>
    public SettingsResolution Settings(JsonObject body, ModelSpec model)
    {
        var file = ApiInputs.Settings(body);
        if (file is null)
        {
            var plain = SettingsRules.ResolveWithNotes(Defaults with { SeqLen = Math.Min(Defaults.SeqLen, Math.Max(1, model.MaxSeqLen)) }, stageGiven: false);
            // As the CLI without --buffer-size: the default buffer is sized to hold the largest swapped tensor.
            var sized = Memory.SwapBufferRule.SizeDefault(model, plain.Settings, given: false);
            return new SettingsResolution(sized.Settings.Validated(model), [.. plain.Notes, .. sized.Notes]);
        }
        var resolved = SettingsRules.ResolveWithNotes(file.ValidatedFile(ApiInputs.SettingsSource), stageGiven: true);
        var settings = resolved.Settings.Validated(model, ApiInputs.SettingsSource);
        // The planner probes an existing NVMe folder (as check-nvme does): only inside the folders the server was given.
        if (settings.NvmePath is { Length: > 0 } path && settings.UsesNvme) nvmeRoots.Inside(path, "settings.nvme_path");
        return resolved with { Settings = settings };
    }

    /// <summary><c>aios plan --json</c>: the plan document, problems and all (the CLI prints it and exits 2 or 3).</summary>
    public string Plan(JsonObject body) => DeepSpeedConfig.ToJson(PlanDocument.Build(BuildPlan(body, keepTimeline: false)));

    /// <summary>
    /// The file <c>aios plan --timeline FILE</c> writes: one JSON line per simulated operation and memory level of the
    /// step; empty when the plan simulated no step (memory only, or settings that cannot run).
    /// </summary>
    public string Timeline(JsonObject body)
    {
        var plan = BuildPlan(body, keepTimeline: true);
        if (plan.Step is not { } step) return "";
        // Simulation.Timeline writes only to a file (atomically); a scratch file keeps its text the CLI's to the byte.
        string scratch = Path.Combine(Path.GetTempPath(), $"aios-serve-timeline-{Guid.NewGuid():N}.jsonl");
        try
        {
            Simulation.Timeline.Write(scratch, step, plan.Hardware.HasGpu);
            return File.ReadAllText(scratch);
        }
        finally
        {
            File.Delete(scratch);
        }
    }

    /// <summary>What <c>aios plan</c> computes: settings as the CLI builds them, the NVMe folder checked (never created), the plan.</summary>
    private PlanResult BuildPlan(JsonObject body, bool keepTimeline)
    {
        var model = ApiInputs.Model(body);
        var hardware = ApiInputs.Hardware(body);
        var built = Settings(body, model);
        var options = new PlanOptions
        {
            Simulate = !ApiInputs.Value(body, "memory_only", false), KeepTimeline = keepTimeline, FirstStep = true,
            Correction = LearnedCorrection.For(hardware),
        };
        var folder = DefaultOffloadFolder.Validate(model, hardware, built.Settings, mayCreate: false);
        var plan = TrainingPlanner.Plan(model, hardware, folder.Settings, options);
        return plan with
        {
            Notes = folder.Note is null ? [.. built.Notes, .. plan.Notes] : [.. built.Notes, .. plan.Notes, folder.Note],
        };
    }

    /// <summary>
    /// <c>aios ds-config</c> with the default learning-rate flags: the config, or the CLI's errors when the settings cannot
    /// run. Warnings the CLI writes to stderr come back in <paramref name="warnings"/>.
    /// </summary>
    public string DsConfig(JsonObject body, List<string> warnings)
    {
        var model = ApiInputs.Model(body);
        var hardware = ApiInputs.Hardware(body);
        int steps = ApiInputs.Value(body, "steps", DefaultSteps);
        var schedule = new LearningRateSchedule
        {
            BaseLearningRate = LearningRateSchedule.DefaultLearningRate, MinLearningRate = 0,
            WarmupSteps = Math.Clamp(steps / 10, 0, 1000), Decay = LearningRateDecay.Constant, TotalSteps = steps,
        };
        if (schedule.Problems() is { Count: > 0 } lr) throw new DescriptionException(string.Join("; ", lr) + ".");
        var built = Settings(body, model);
        warnings.AddRange(built.Notes.Select(n => "note: " + n));
        var plan = TrainingPlanner.Plan(model, hardware, built.Settings);
        if (plan.SettingsProblems.Count > 0)
            throw new DescriptionException(string.Join(System.Environment.NewLine, plan.SettingsProblems.Select(p => "error: " + p)));
        var s = plan.Settings;
        if (s.GradientOffload is { } g && g != s.OptimizerOffload)
            warnings.Add($"warning: DeepSpeed keeps gradients with the optimizer ({s.OptimizerOffload.ToString().ToLowerInvariant()}); --offload-gradients {g.ToString().ToLowerInvariant()} is not in the config.");
        warnings.AddRange(DeepSpeedConfig.Notes(s).Select(n => "warning: " + n));
        warnings.AddRange(plan.CapacityProblems.Select(p => "warning: " + p));
        return DeepSpeedConfig.ToJson(DeepSpeedConfig.Build(plan.Model, plan.Settings, plan.GpusPerNode, plan.Nodes, new DeepSpeedOptimizer { Schedule = schedule }));
    }

    /// <summary>The settings file for the request's settings, as <c>aios tune --out</c> writes aios-settings.json (checked first).</summary>
    public static string SettingsFile(JsonObject body, PlannerApi api)
    {
        var model = ApiInputs.Model(body);
        return System.Text.Json.JsonSerializer.Serialize(api.Settings(body, model).Settings, DescriptionJson.Options) + "\n";
    }

    /// <summary><c>aios models --json</c>.</summary>
    public static string Models()
    {
        var array = new JsonArray(ModelCatalog.Default.Names().Select(ModelCatalog.Default.Load).Select(m => (JsonNode)new JsonObject
        {
            ["name"] = m.Name, ["params"] = m.TotalParameters, ["layers"] = m.NumLayers, ["hidden_size"] = m.HiddenSize,
            ["heads"] = m.NumHeads, ["kv_heads"] = m.KvHeads, ["ffn_size"] = m.FfnSize, ["vocab_size"] = m.VocabSize,
        }).ToArray());
        return DeepSpeedConfig.ToJson(new JsonObject { ["models"] = array });
    }

    /// <summary><c>aios profiles --json</c>.</summary>
    public static string Profiles()
    {
        var array = new JsonArray(ProfileCatalog.Default.Names().Select(ProfileCatalog.Default.Load).Select(p => (JsonNode)new JsonObject
        {
            ["name"] = p.Name, ["nodes"] = p.Nodes, ["gpus_per_node"] = p.GpusPerNode, ["gpu"] = p.Gpu?.Model,
            ["gpu_memory_bytes"] = p.Gpu?.Memory.Value, ["ram_bytes"] = p.Cpu.Ram.Value,
            ["nvme_bytes"] = p.Drives.Sum(d => d.Capacity.Value), ["source"] = p.Source.ToString().ToLowerInvariant(),
        }).ToArray());
        return DeepSpeedConfig.ToJson(new JsonObject { ["profiles"] = array });
    }

    /// <summary>A bundled profile's description file, for the page to edit ("what if I buy…") and send back as an upload.</summary>
    public static string ProfileFile(string name)
    {
        if (!ProfileCatalog.Default.Names().Contains(name, StringComparer.Ordinal))
            throw new DescriptionException($"Unknown profile '{name}'. Available profiles: {string.Join(", ", ProfileCatalog.Default.Names())}.");
        return File.ReadAllText(new Catalog("profiles", Catalog.Default("profiles").Folders).Resolve(name));
    }

    /// <summary>Default of the ds-config endpoint's steps (the CLI's --steps default).</summary>
    public const int DefaultSteps = 1000;
}

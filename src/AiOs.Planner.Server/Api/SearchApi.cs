using System.Text.Json;
using System.Text.Json.Nodes;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Tuning;

namespace AiOs.Planner.Server.Api;

/// <summary>
/// <c>aios tune --json</c> and <c>aios whatif --json</c> for a request body: the same requests built from the same
/// fields (the flags' names in snake_case, with the flags' defaults), and the same documents.
/// </summary>
internal static class SearchApi
{
    /// <summary>The tune request of a body: model, hardware, settings (as <c>--settings FILE</c>) and the search fields.</summary>
    public static TuneRequest TuneRequest(JsonObject body, PlannerApi api, List<string> notes)
    {
        var model = ApiInputs.Model(body);
        var hardware = ApiInputs.Hardware(body);
        var built = api.Settings(body, model);
        notes.AddRange(built.Notes);
        return new TuneRequest
        {
            Model = model,
            Hardware = hardware,
            Objective = Objective(body),
            Base = built.Settings,
            Budget = Math.Max(1, ApiInputs.Value(body, "budget", Tuning.TuneRequest.DefaultBudget)),
            MaxGradAccumulation = ApiInputs.Value(body, "max_grad_accumulation", Tuning.TuneRequest.DefaultMaxGradAccumulation),
            MaxMicroBatch = ApiInputs.Value(body, "max_micro_batch", Tuning.TuneRequest.DefaultMaxMicroBatch),
            GlobalBatch = ApiInputs.Value<int?>(body, "global_batch", null),
            MemoryHeadroom = ApiInputs.Value(body, "memory_headroom", Tuning.TuneRequest.DefaultMemoryHeadroom),
            AllowEightBitOptimizer = ApiInputs.Value(body, "allow_8bit_optimizer", false),
        };
    }

    private static TuneObjective Objective(JsonObject body)
    {
        string text = ApiInputs.Value(body, "objective", "throughput");
        foreach (string name in Enum.GetNames<TuneObjective>())
            if (string.Equals(name, text.Trim(), StringComparison.OrdinalIgnoreCase)) return Enum.Parse<TuneObjective>(name);
        throw new DescriptionException($"'{text}' is not a valid value for --objective; use one of throughput, memory.");
    }

    /// <summary>The <c>aios tune --json</c> document of a result (no <c>--out</c>: no files, no warnings; no GPU memory limit: the page edits the profile's GPU memory instead).</summary>
    public static string TuneJson(TuneResult result, long? gpuMemoryLimitBytes = null) => DeepSpeedConfig.ToJson(SearchDocuments.Tune(result, null, gpuMemoryLimitBytes));

    /// <summary>The whatif request of a body: <c>models</c> and <c>hardware</c> as lists of bundled names (or "all").</summary>
    public static WhatIfRequest WhatIfRequest(JsonObject body)
    {
        return new WhatIfRequest
        {
            Models = Names(body, "models", ModelCatalog.Default.Names(), "model").Select(ModelCatalog.Default.Load).OrderBy(m => m.TotalParameters).ToList(),
            Hardware = Names(body, "hardware", ProfileCatalog.Default.Names(), "profile").Select(ProfileCatalog.Default.Load).ToList(),
            Base = new TrainingSettings { SeqLen = ApiInputs.Value(body, "seq_len", 1024), Precision = Precision(body) }.Validated(model: null),
            Upgrades = ApiInputs.Value(body, "upgrades", true),
            MinTokensPerSecond = ApiInputs.Value(body, "min_tokens_per_s", 0.0),
            Budget = Math.Max(1, ApiInputs.Value(body, "budget", Tuning.TuneRequest.DefaultBudget)),
            MaxGradAccumulation = ApiInputs.Value(body, "max_grad_accumulation", Tuning.TuneRequest.DefaultMaxGradAccumulation),
            MaxMicroBatch = ApiInputs.Value(body, "max_micro_batch", Tuning.TuneRequest.DefaultMaxMicroBatch),
            GlobalBatch = ApiInputs.Value<int?>(body, "global_batch", null),
            MemoryHeadroom = ApiInputs.Value(body, "memory_headroom", Tuning.TuneRequest.DefaultMemoryHeadroom),
            AllowEightBitOptimizer = ApiInputs.Value(body, "allow_8bit_optimizer", false),
        };
    }

    private static Settings.Precision Precision(JsonObject body)
    {
        string text = ApiInputs.Value(body, "precision", "bf16");
        foreach (string name in Enum.GetNames<Settings.Precision>())
            if (string.Equals(name, text.Trim(), StringComparison.OrdinalIgnoreCase)) return Enum.Parse<Settings.Precision>(name);
        throw new DescriptionException($"'{text}' is not a valid value for --precision; use one of fp32, bf16, fp16.");
    }

    /// <summary>Bundled names only (the CLI also takes paths; the server never opens a path from the browser).</summary>
    private static IEnumerable<string> Names(JsonObject body, string field, IReadOnlyList<string> all, string kind)
    {
        var names = ApiInputs.Value<string[]?>(body, field, null) ?? throw new DescriptionException($"\"{field}\" is missing: give a list of {kind} names, or [\"all\"].");
        if (names is ["all"]) return all;
        foreach (string n in names)
            if (!all.Contains(n, StringComparer.Ordinal))
                throw new DescriptionException($"Unknown {kind} '{n}' in \"{field}\". Available {kind}s: {string.Join(", ", all)}.");
        return names;
    }

    /// <summary>The <c>aios whatif --json</c> document (no GPU memory limit, as <see cref="TuneJson"/>).</summary>
    public static string WhatIfJson(WhatIfResult result, long? gpuMemoryLimitBytes = null) => DeepSpeedConfig.ToJson(SearchDocuments.WhatIf(result, gpuMemoryLimitBytes));
}

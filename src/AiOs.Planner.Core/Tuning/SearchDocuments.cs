using System.Text.Json;
using System.Text.Json.Nodes;
using AiOs.Planner.Descriptions;

namespace AiOs.Planner.Tuning;

/// <summary>Files <c>aios tune --out</c> wrote (null: not written) and what it warned about them.</summary>
public sealed record TuneFiles(string? Settings, string? DeepSpeed, IReadOnlyList<string> Warnings);

/// <summary>
/// The <c>aios tune --json</c> and <c>aios whatif --json</c> documents, built in one place so the CLI and the server's
/// API answer with the same fields.
/// </summary>
public static class SearchDocuments
{
    /// <summary>The tune document; <paramref name="files"/> null when nothing was written.</summary>
    public static JsonObject Tune(TuneResult result, TuneFiles? files, long? gpuMemoryLimitBytes)
    {
        ArgumentNullException.ThrowIfNull(result);
        return new JsonObject
        {
            ["gpu_memory_limit_bytes"] = gpuMemoryLimitBytes,
            ["best"] = result.Best is null ? null : Candidate(result.Best),
            ["deepspeed_best"] = result.DeepSpeedBest is null ? null : Candidate(result.DeepSpeedBest),
            ["alternatives"] = new JsonArray(result.Alternatives.Select(c => (JsonNode)Candidate(c)).ToArray()),
            ["pareto_front"] = new JsonArray(result.ParetoFront.Select(c => (JsonNode)Candidate(c)).ToArray()),
            ["baselines"] = new JsonObject(result.Baselines.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)Candidate(kv.Value)))),
            ["global_batch"] = result.GlobalBatch,
            ["memory_headroom"] = result.MemoryHeadroom,
            ["near_limits"] = Strings(result.NearLimits),
            ["problems"] = new JsonArray(result.Problems.Select(p => (JsonNode)new JsonObject { ["flag"] = p.Flag, ["message"] = p.Message }).ToArray()),
            ["files"] = files is null ? null : new JsonObject { ["aios_settings"] = files.Settings, ["ds_config"] = files.DeepSpeed },
            ["warnings"] = Strings(files?.Warnings ?? []),
            ["evaluated"] = result.Evaluated,
            ["simulated"] = result.Simulated,
            ["feasible"] = result.FeasibleCount,
            ["elapsed_s"] = result.Elapsed.TotalSeconds,
            ["explanation"] = Strings(result.Explanation),
        };
    }

    /// <summary>The what-if document.</summary>
    public static JsonObject WhatIf(WhatIfResult result, long? gpuMemoryLimitBytes)
    {
        ArgumentNullException.ThrowIfNull(result);
        return new JsonObject
        {
            ["gpu_memory_limit_bytes"] = gpuMemoryLimitBytes,
            ["cells"] = new JsonArray(result.Cells.Select(c => (JsonNode)new JsonObject
            {
                ["model"] = c.Model, ["params"] = c.Parameters, ["hardware"] = c.Hardware, ["variant"] = c.Variant, ["fits"] = c.Fits,
                ["tokens_per_s"] = c.TokensPerSecond, ["bottleneck"] = c.Bottleneck, ["settings"] = c.Settings,
                ["gpu_peak_bytes"] = c.GpuPeak.Value, ["host_peak_bytes"] = c.HostPeak.Value,
                ["sequences_per_step"] = c.SequencesPerStep, ["tokens_per_step"] = c.TokensPerStep, ["note"] = c.Note,
            }).ToArray()),
            ["largest_at_rate"] = new JsonObject(result.LargestAtRate.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value)))),
        };
    }

    private static JsonObject Candidate(Candidate c) => new()
    {
        ["description"] = Tuner.Describe(c.Settings),
        ["tokens_per_s"] = c.TokensPerSecond,
        ["step_time_s"] = c.StepTime.Seconds,
        ["bottleneck"] = c.Bottleneck,
        ["sequences_per_step"] = c.SequencesPerStep,
        ["tokens_per_step"] = c.TokensPerStep,
        ["runs_on_deepspeed"] = Tuner.RunsOnDeepSpeed(c.Settings),
        ["gpu_peak_bytes"] = c.GpuPeak.Value,
        ["host_peak_bytes"] = c.HostPeak.Value,
        ["pinned_peak_bytes"] = c.PinnedPeak.Value,
        ["nvme_bytes"] = c.NvmePeak.Value,
        ["settings"] = JsonSerializer.SerializeToNode(c.Settings, DescriptionJson.Options),
    };

    private static JsonArray Strings(IEnumerable<string> lines) => new(lines.Select(l => (JsonNode)JsonValue.Create(l)!).ToArray());
}

using System.Text.Json;
using System.Text.Json.Nodes;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;

namespace AiOs.Planner.Calibration.Compute;

/// <summary>
/// The JSON document of an eager fit (what <c>aios fit-eager --json</c> prints and <c>--out</c> writes): the fitted
/// <see cref="ComputeModel"/> (field names as <see cref="ComputeModel"/>'s properties, durations in µs), every row with
/// its role, and the error summaries and targets on fit and test rows.
/// </summary>
public static class EagerFitDocument
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>The document of <paramref name="result"/>, fitted from <paramref name="baselines"/> on <paramref name="hardware"/>.</summary>
    public static JsonObject Build(EagerFitResult result, string baselines, string hardware, IReadOnlyList<string> skipped)
    {
        ArgumentNullException.ThrowIfNull(result);
        return new JsonObject
        {
            ["baselines"] = Path.GetFullPath(baselines),
            ["hardware"] = hardware,
            ["split"] = result.Split.Describe(),
            ["evaluations"] = result.Evaluations,
            ["start"] = Model(result.Start),
            ["fitted"] = Model(result.Fitted),
            ["fit"] = Summary(result.Fit),
            ["test"] = Summary(result.Test),
            ["test_with_start"] = Summary(result.TestWithStart),
            ["targets"] = new JsonObject
            {
                ["on"] = "test rows",
                ["median_abs_error"] = EagerFitResult.MedianTarget,
                ["max_abs_error"] = EagerFitResult.MaxTarget,
                ["met"] = result.TargetsMet,
            },
            ["rows"] = new JsonArray(result.Rows.Select(r => (JsonNode)new JsonObject
            {
                ["model"] = r.Baseline.Model,
                ["micro_batch"] = r.Baseline.MicroBatch,
                ["seq_len"] = r.Baseline.SeqLen,
                ["precision"] = r.Baseline.Precision == Precision.Fp32 ? "fp32" : "bf16",
                ["grad_checkpointing"] = r.Baseline.Checkpointing,
                ["role"] = r.Role == EagerRole.Fit ? "fit" : "test",
                ["measured_ms"] = r.Baseline.MedianMs,
                ["predicted_start_ms"] = r.DefaultMs,
                ["predicted_fitted_ms"] = r.FittedMs,
                ["error"] = r.Error,
                ["error_start"] = r.DefaultError,
                ["source"] = r.Baseline.Source,
            }).ToArray()),
            ["skipped"] = new JsonArray(skipped.Select(s => (JsonNode)JsonValue.Create(s)!).ToArray()),
        };
    }

    /// <summary>The document as indented text with a final newline.</summary>
    public static string ToText(JsonObject document) => document.ToJsonString(Indented) + "\n";

    /// <summary>Writes the document atomically: a reader sees the old file or the whole new one.</summary>
    public static void WriteFile(string path, JsonObject document) => Descriptions.AtomicFile.WriteAllText(path, ToText(document));

    /// <summary>A compute model's constants; the names are <see cref="ComputeModel"/>'s, durations in microseconds.</summary>
    public static JsonObject Model(ComputeModel m) => new()
    {
        ["matmul_half_rate_hidden"] = m.MatmulHalfRateHidden,
        ["elementwise_traffic"] = m.ElementwiseTraffic,
        ["memory_efficiency"] = m.MemoryEfficiency,
        ["layer_overhead_us"] = m.LayerOverhead.Nanoseconds / 1e3,
        ["layer_launch_floor_us"] = m.LayerLaunchFloor.Nanoseconds / 1e3,
        ["step_overhead_us"] = m.StepOverhead.Nanoseconds / 1e3,
        ["recompute_launch_floors"] = m.RecomputeLaunchFloors,
    };

    private static JsonObject Summary(ErrorSummary s) => new()
    {
        ["rows"] = s.Count,
        ["median_abs_error"] = s.Count == 0 ? null : s.MedianAbs,
        ["max_abs_error"] = s.Count == 0 ? null : s.MaxAbs,
    };
}

using System.Text.Json;
using System.Text.Json.Serialization;

namespace AiOs.Planner.Records;

/// <summary>
/// Options of the <c>aios plan --json</c> document (<see cref="PlanRecord"/>): snake_case fields, enums as snake_case names, nulls
/// written (a reader sees <c>"gpu": null</c>, not a missing field).
/// </summary>
public static class PlanRecordJson
{
    /// <summary>Writes and reads the plan document.</summary>
    public static JsonSerializerOptions Options { get; } = Create(read: false);

    /// <summary>As <see cref="Options"/>, but a field a newer plan document adds is skipped and one an older lacks keeps its default.</summary>
    public static JsonSerializerOptions ReadOptions { get; } = Create(read: true);

    private static JsonSerializerOptions Create(bool read)
    {
        var options = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        };
        if (read)
            options.TypeInfoResolver = new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver
            {
                Modifiers = { t => { foreach (var p in t.Properties) p.IsRequired = false; } },
            };
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }
}

using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using AiOs.Planner.Descriptions;

namespace AiOs.Planner.Records;

/// <summary>
/// The version of the run record (<c>settings.json</c>, <c>metrics.jsonl</c>, <c>trace.jsonl</c>, <c>summary.json</c>) and the
/// JSON options it is written and read with. <c>settings.json</c> and <c>summary.json</c> carry a <c>schema</c> field; the JSON-lines
/// streams are of their folder's version. A folder without the field is version 0 (written before the record was typed) and reads
/// the same: version 1 only added fields.
/// </summary>
public static class RecordSchema
{
    /// <summary>The version this build writes and the newest it reads.</summary>
    public const int Current = 1;

    /// <summary>Refuses a file written by a newer aios, naming the file, its version and this build's.</summary>
    /// <exception cref="DescriptionException"><paramref name="schema"/> is newer than <see cref="Current"/>.</exception>
    public static void Check(int schema, string file)
    {
        if (schema > Current)
            throw new DescriptionException($"{file} is run-record schema {schema}, written by a newer aios; this aios reads schema {Current} and older. " +
                "Report it with the aios that wrote it, or update aios.") { File = file, Field = "$.schema" };
    }

    /// <summary>Options the engine writes whole run files with (indented, snake_case, enums as snake_case names, nulls left out).</summary>
    public static JsonSerializerOptions WriteOptions => DescriptionJson.Options;

    /// <summary>As <see cref="WriteOptions"/>, one line per value (the JSON-lines streams).</summary>
    public static JsonSerializerOptions LineOptions { get; } = new(DescriptionJson.Options) { WriteIndented = false };

    /// <summary>
    /// Options run files are read with: as written, but fields a newer writer of the same schema added are skipped, and fields an
    /// older writer did not write keep their defaults (the reader checks what it cannot do without).
    /// </summary>
    public static JsonSerializerOptions ReadOptions { get; } = CreateReadOptions();

    private static JsonSerializerOptions CreateReadOptions()
    {
        var options = new JsonSerializerOptions(DescriptionJson.Options)
        {
            UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip,
            RespectRequiredConstructorParameters = false,
            TypeInfoResolver = new DefaultJsonTypeInfoResolver { Modifiers = { Optional } },
        };
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }

    /// <summary>Lifts C#'s <c>required</c> on reading: <c>required</c> makes the writer set every field, not every old file hold it.</summary>
    private static void Optional(JsonTypeInfo type)
    {
        foreach (JsonPropertyInfo p in type.Properties) p.IsRequired = false;
    }
}

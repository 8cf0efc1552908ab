using System.Text.Json;
using System.Text.Json.Serialization;

namespace AiOs.Planner.Records;

/// <summary>
/// Writes a NaN or infinite <see cref="double"/> as JSON <c>null</c> (JSON has no such numbers, and System.Text.Json
/// throws on them), and reads <c>null</c> back as NaN; so a diverged loss never crashes the writer of a run file.
/// </summary>
public sealed class FiniteOrNullConverter : JsonConverter<double>
{
    /// <inheritdoc/>
    public override bool HandleNull => true;

    /// <inheritdoc/>
    public override double Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.Null ? double.NaN : reader.GetDouble();

    /// <inheritdoc/>
    public override void Write(Utf8JsonWriter writer, double value, JsonSerializerOptions options)
    {
        if (double.IsFinite(value)) writer.WriteNumberValue(value);
        else writer.WriteNullValue();
    }
}

/// <summary>As <see cref="FiniteOrNullConverter"/>, for an optional value: null and non-finite values are both written as <c>null</c>.</summary>
public sealed class OptionalFiniteOrNullConverter : JsonConverter<double?>
{
    /// <inheritdoc/>
    public override bool HandleNull => true;

    /// <inheritdoc/>
    public override double? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.Null ? null : reader.GetDouble();

    /// <inheritdoc/>
    public override void Write(Utf8JsonWriter writer, double? value, JsonSerializerOptions options)
    {
        if (value is { } v && double.IsFinite(v)) writer.WriteNumberValue(v);
        else writer.WriteNullValue();
    }
}

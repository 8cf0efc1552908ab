using System.Text.Json;
using System.Text.Json.Serialization;
using AiOs.Planner.Optim;

namespace AiOs.Planner.Settings;

/// <summary>Writes an <see cref="OptimizerStateFormat"/> as its CLI name (<c>fp32</c>, <c>8bit</c>); a read error lists both.</summary>
public sealed class OptimizerStateJsonConverter : JsonConverter<OptimizerStateFormat>
{
    public override OptimizerStateFormat Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        string? text = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
        return OptimizerStateFormats.Parse(text)
            ?? throw new JsonException($"{(text is null ? "expected a string" : $"'{text}' is not an optimizer state format")}: use fp32 or 8bit");
    }

    public override void Write(Utf8JsonWriter writer, OptimizerStateFormat value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.Name());
}

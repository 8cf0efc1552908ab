using System.Text.Json;
using System.Text.Json.Serialization;

namespace AiOs.Planner.Descriptions;

/// <summary>The snake_case names an enum field of a description is written with, as the description-wide enum converter writes them.</summary>
public static class Choice
{
    /// <summary>The name <paramref name="value"/> is written as (<c>GeluTanh</c> → <c>gelu_tanh</c>).</summary>
    public static string NameOf<TEnum>(TEnum value) where TEnum : struct, Enum =>
        JsonNamingPolicy.SnakeCaseLower.ConvertName(value.ToString());

    /// <summary>Every allowed name, comma-separated, for messages.</summary>
    public static string Allowed<TEnum>() where TEnum : struct, Enum =>
        string.Join(", ", Enum.GetValues<TEnum>().Select(NameOf));

    /// <summary>The value named <paramref name="text"/> (case ignored), or null.</summary>
    public static TEnum? Parse<TEnum>(string text) where TEnum : struct, Enum =>
        Enum.GetValues<TEnum>().Cast<TEnum?>().FirstOrDefault(v => string.Equals(NameOf(v!.Value), text, StringComparison.OrdinalIgnoreCase));
}

/// <summary>
/// An enum field written as its snake_case name, whose read error lists the allowed names
/// (the general enum converter only says the value "could not be converted").
/// </summary>
/// <remarks>Put it on a property with <c>[JsonConverter]</c>; it writes exactly what the description-wide enum converter writes.</remarks>
public sealed class ChoiceJsonConverter<TEnum> : JsonConverter<TEnum> where TEnum : struct, Enum
{
    public override TEnum Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.String)
            throw new JsonException($"expected one of {Choice.Allowed<TEnum>()} as a string");
        string text = reader.GetString()!;
        return Choice.Parse<TEnum>(text) ?? throw new JsonException($"'{text}' is not one of {Choice.Allowed<TEnum>()}");
    }

    public override void Write(Utf8JsonWriter writer, TEnum value, JsonSerializerOptions options) =>
        writer.WriteStringValue(Choice.NameOf(value));
}

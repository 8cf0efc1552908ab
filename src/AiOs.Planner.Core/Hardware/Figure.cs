using System.Text.Json;
using System.Text.Json.Serialization;

namespace AiOs.Planner.Hardware;

/// <summary>Where a figure comes from.</summary>
public enum FigureSource
{
    /// <summary>Taken from a vendor datasheet or specification.</summary>
    Datasheet,
    /// <summary>Measured on the machine (see <see cref="Provenance.Method"/> and <see cref="Provenance.Date"/>).</summary>
    Measured,
    /// <summary>An informed guess, for figures nobody publishes (e.g. a CPU's Adam throughput).</summary>
    Estimate,
}

/// <summary>How a figure was obtained: its source and, when measured, when and how.</summary>
public sealed record Provenance(FigureSource Source, string? Date = null, string? Method = null)
{
    public override string ToString() => Source switch
    {
        FigureSource.Measured => $"measured{(Date is null ? "" : " " + Date)}{(Method is null ? "" : " (" + Method + ")")}",
        _ => Source.ToString().ToLowerInvariant(),
    };
}

/// <summary>
/// One number of a hardware profile with its provenance. In JSON either a bare number (its provenance is
/// then the profile's <c>source</c>) or <c>{"value": 55, "source": "measured", "date": "…", "method": "…"}</c>.
/// </summary>
[JsonConverter(typeof(FigureJsonConverter))]
public sealed record Figure(double Value, Provenance? Provenance = null)
{
    public static implicit operator Figure(double value) => new(value);

    public static Figure Measured(double value, string date, string method) => new(value, new Provenance(FigureSource.Measured, date, method));
}

/// <summary>Reads a figure from a number or an object; writes a number when it has no provenance of its own.</summary>
public sealed class FigureJsonConverter : JsonConverter<Figure>
{
    public override Figure Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Number) return new Figure(reader.GetDouble());
        if (reader.TokenType != JsonTokenType.StartObject)
            throw new JsonException("expected a number or an object {\"value\": …, \"source\": \"datasheet|measured|estimate\"}");
        double? value = null;
        FigureSource source = FigureSource.Datasheet;
        string? date = null, method = null;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            string name = reader.GetString() ?? "";
            reader.Read();
            switch (name)
            {
                case "value": value = reader.GetDouble(); break;
                case "source":
                    string s = reader.GetString() ?? "";
                    source = s switch
                    {
                        "datasheet" => FigureSource.Datasheet,
                        "measured" => FigureSource.Measured,
                        "estimate" => FigureSource.Estimate,
                        _ => throw new JsonException($"source '{s}' is not one of datasheet, measured, estimate"),
                    };
                    break;
                case "date": date = reader.GetString(); break;
                case "method": method = reader.GetString(); break;
                default: throw new JsonException($"unknown key '{name}' in a figure (expected value, source, date, method)");
            }
        }
        return new Figure(value ?? throw new JsonException("a figure object needs a \"value\""), new Provenance(source, date, method));
    }

    public override void Write(Utf8JsonWriter writer, Figure value, JsonSerializerOptions options)
    {
        if (value.Provenance is null)
        {
            writer.WriteNumberValue(value.Value);
            return;
        }
        writer.WriteStartObject();
        writer.WriteNumber("value", value.Value);
        writer.WriteString("source", value.Provenance.Source.ToString().ToLowerInvariant());
        if (value.Provenance.Date is { } d) writer.WriteString("date", d);
        if (value.Provenance.Method is { } m) writer.WriteString("method", m);
        writer.WriteEndObject();
    }
}

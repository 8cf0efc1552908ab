using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace AiOs.Planner.Units;

/// <summary>An exact count of bytes. Binary prefixes (KiB, MiB, GiB) and decimal ones (KB, MB, GB) are named apart.</summary>
[JsonConverter(typeof(BytesJsonConverter))]
public readonly record struct Bytes(long Value) : IComparable<Bytes>
{
    public const long KiBValue = 1024;
    public const long MiBValue = 1024 * 1024;
    public const long GiBValue = 1024L * 1024 * 1024;
    public const long TiBValue = 1024L * 1024 * 1024 * 1024;

    public static Bytes Zero => default;

    public static Bytes FromKiB(double kib) => new(checked((long)Math.Round(kib * KiBValue)));
    public static Bytes FromMiB(double mib) => new(checked((long)Math.Round(mib * MiBValue)));
    public static Bytes FromGiB(double gib) => new(checked((long)Math.Round(gib * GiBValue)));
    public static Bytes FromGB(double gb) => new(checked((long)Math.Round(gb * 1e9)));

    /// <summary>Bytes taken by <paramref name="elements"/> values of <paramref name="bytesPerElement"/> bytes each.</summary>
    public static Bytes OfElements(long elements, int bytesPerElement) => new(checked(elements * bytesPerElement));

    public double GiB => Value / (double)GiBValue;
    public double MiB => Value / (double)MiBValue;
    public double GB => Value / 1e9;

    public static Bytes operator +(Bytes a, Bytes b) => new(checked(a.Value + b.Value));
    public static Bytes operator -(Bytes a, Bytes b) => new(checked(a.Value - b.Value));
    public static Bytes operator *(Bytes a, long k) => new(checked(a.Value * k));
    public static Bytes operator *(long k, Bytes a) => new(checked(a.Value * k));
    public static Bytes operator *(Bytes a, double k) => new(checked((long)Math.Round(a.Value * k)));
    public static Bytes operator /(Bytes a, long k) => new(a.Value / k);
    public static double operator /(Bytes a, Bytes b) => a.Value / (double)b.Value;
    public static bool operator <(Bytes a, Bytes b) => a.Value < b.Value;
    public static bool operator >(Bytes a, Bytes b) => a.Value > b.Value;
    public static bool operator <=(Bytes a, Bytes b) => a.Value <= b.Value;
    public static bool operator >=(Bytes a, Bytes b) => a.Value >= b.Value;

    public static Bytes Max(Bytes a, Bytes b) => a.Value >= b.Value ? a : b;
    public static Bytes Min(Bytes a, Bytes b) => a.Value <= b.Value ? a : b;

    /// <summary>Rounds up to a multiple of <paramref name="alignment"/> bytes.</summary>
    public Bytes AlignUp(long alignment) => new((Value + alignment - 1) / alignment * alignment);

    public int CompareTo(Bytes other) => Value.CompareTo(other.Value);

    /// <summary>Human-readable, binary prefixes: "1.50 GiB".</summary>
    public override string ToString()
    {
        double v = Math.Abs((double)Value);
        string sign = Value < 0 ? "-" : "";
        return v switch
        {
            >= TiBValue => string.Create(CultureInfo.InvariantCulture, $"{sign}{v / TiBValue:0.00} TiB"),
            >= GiBValue => string.Create(CultureInfo.InvariantCulture, $"{sign}{v / GiBValue:0.00} GiB"),
            >= MiBValue => string.Create(CultureInfo.InvariantCulture, $"{sign}{v / MiBValue:0.0} MiB"),
            >= KiBValue => string.Create(CultureInfo.InvariantCulture, $"{sign}{v / KiBValue:0.0} KiB"),
            _ => string.Create(CultureInfo.InvariantCulture, $"{Value} B"),
        };
    }

    /// <summary>Parses "1048576", "1MiB", "512 KiB", "2GB", "1.5G" (G, M, K alone are binary).</summary>
    public static bool TryParse(string? text, out Bytes bytes)
    {
        bytes = default;
        if (string.IsNullOrWhiteSpace(text)) return false;
        string s = text.Trim().Replace(" ", "", StringComparison.Ordinal);
        int i = 0;
        while (i < s.Length && (char.IsDigit(s[i]) || s[i] == '.' || s[i] == 'e' && i > 0 && i + 1 < s.Length && (char.IsDigit(s[i + 1]) || s[i + 1] == '+'))) i++;
        if (i == 0 || !double.TryParse(s[..i], NumberStyles.Float, CultureInfo.InvariantCulture, out double number) || number < 0) return false;
        double factor = s[i..].ToUpperInvariant() switch
        {
            "" or "B" => 1,
            "K" or "KIB" => KiBValue,
            "M" or "MIB" => MiBValue,
            "G" or "GIB" => GiBValue,
            "T" or "TIB" => TiBValue,
            "KB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            "TB" => 1e12,
            _ => double.NaN,
        };
        if (double.IsNaN(factor)) return false;
        double value = number * factor;
        if (value > long.MaxValue) return false;
        bytes = new Bytes((long)Math.Round(value));
        return true;
    }
}

/// <summary>JSON: a byte count is a number; on reading, a string with a unit ("1MiB", "512K") works too.</summary>
public sealed class BytesJsonConverter : JsonConverter<Bytes>
{
    public override Bytes Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Number) return new Bytes(reader.GetInt64());
        string? text = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
        return Bytes.TryParse(text, out var bytes) ? bytes : throw new JsonException($"'{text}' is not a size; write bytes (1048576) or with a unit (\"1MiB\").");
    }

    public override void Write(Utf8JsonWriter writer, Bytes value, JsonSerializerOptions options) => writer.WriteNumberValue(value.Value);
}

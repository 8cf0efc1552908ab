using System.CommandLine;
using System.CommandLine.Parsing;
using AiOs.Planner.Units;

namespace AiOs.Planner.Cli.Commands;

/// <summary>A size flag ("4G", "1MiB", "1048576") for the calibration commands.</summary>
internal static class SizeOption
{
    /// <summary>A size option with a default.</summary>
    public static Option<Bytes> Create(string name, string description, Bytes defaultValue) => new(name)
    {
        Description = description,
        DefaultValueFactory = _ => defaultValue,
        CustomParser = Parse,
    };

    /// <summary>A size option that is null unless given.</summary>
    public static Option<Bytes?> CreateOptional(string name, string description) => new(name)
    {
        Description = description,
        CustomParser = r => Parse(r),
    };

    private static Bytes Parse(ArgumentResult result)
    {
        string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
        if (Bytes.TryParse(text, out var bytes) && bytes.Value > 0) return bytes;
        result.AddError($"'{text}' is not a size; write bytes (1048576) or with a unit (1M, 512K, 4GiB).");
        return default;
    }
}

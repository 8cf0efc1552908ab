using System.Text.Json;
using System.Text.Json.Nodes;
using AiOs.Planner.Descriptions;

namespace AiOs.Planner.Reports;

/// <summary>
/// Reads a JSON-lines run file (<c>metrics.jsonl</c>, <c>trace.jsonl</c>, a timeline). A run stopped mid-write (a
/// full disk, a killed process) can leave its last line cut off: that line is skipped and a warning says so, since
/// every line before it is whole. A bad line anywhere else is an error naming the file and the line: it is not a torn
/// write, so the file is not what the engine wrote.
/// </summary>
internal static class JsonLines
{
    /// <summary>The objects of <paramref name="path"/> with their line numbers (from 1); a torn last line goes to <paramref name="warnings"/>.</summary>
    /// <exception cref="DescriptionException">A line other than the last is not a JSON object.</exception>
    public static IEnumerable<(int Line, JsonObject Value)> Read(string path, ICollection<string> warnings)
    {
        int number = 0;
        (int Line, string Text)? pending = null;
        foreach (string line in File.ReadLines(path))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            // One line of lookahead: only once the next line is seen is this one known not to be the last.
            if (pending is { } p) yield return (p.Line, Parse(path, p.Line, p.Text, last: false, warnings)!);
            pending = (number, line);
        }
        if (pending is { } final && Parse(path, final.Line, final.Text, last: true, warnings) is { } o) yield return (final.Line, o);
    }

    private static JsonObject? Parse(string path, int line, string text, bool last, ICollection<string> warnings)
    {
        string why;
        try
        {
            if (JsonNode.Parse(text) is JsonObject o) return o;
            why = "not a JSON object";
        }
        catch (JsonException e)
        {
            why = $"not a JSON object ({e.Message.Split(" LineNumber:")[0]})";
        }
        if (last && !text.TrimEnd().EndsWith('}'))
        {
            warnings.Add($"{path}, line {line}: the last line is cut off (the run stopped while writing it, for example on a full disk); it was skipped and the {line - 1} lines before it were read.");
            return null;
        }
        throw new DescriptionException($"{path}, line {line}: {why}. Only a cut-off last line is skipped; this one is inside the file, so the file is damaged or was edited.") { File = path };
    }

    /// <summary>Wraps a line that parsed but lacks what the reader needs in an error naming the file and line.</summary>
    public static T Field<T>(string path, int line, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException or JsonException)
        {
            throw new DescriptionException($"{path}, line {line}: a field is missing or has the wrong type ({e.Message}).", e) { File = path };
        }
    }
}

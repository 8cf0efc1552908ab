using System.Text.Json;
using AiOs.Planner.Descriptions;

namespace AiOs.Planner.Records;

/// <summary>
/// Reads a JSON-lines run file (<c>metrics.jsonl</c>, <c>trace.jsonl</c>, a timeline) into typed lines. A run stopped mid-write (a
/// full disk, a killed process) can leave its last line cut off: that line is skipped and a warning says so, since every line
/// before it is whole. A bad line anywhere else is an error naming the file and the line: it is not a torn write, so the file is
/// not what the engine wrote.
/// </summary>
public static class JsonLines
{
    /// <summary>
    /// The lines of <paramref name="path"/> as <typeparamref name="T"/> (<see cref="RecordSchema.ReadOptions"/>), each checked by
    /// <paramref name="check"/> (which returns what is missing, or null); a torn last line goes to <paramref name="warnings"/>.
    /// </summary>
    /// <exception cref="DescriptionException">A line other than the last is not a JSON object of the type, or lacks what <paramref name="check"/> needs.</exception>
    public static IReadOnlyList<T> Read<T>(string path, ICollection<string> warnings, Func<T, string?> check) where T : class
    {
        var read = new List<T>();
        int number = 0;
        (int Line, string Text)? pending = null;
        foreach (string line in File.ReadLines(path))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            // One line of lookahead: only once the next line is seen is this one known not to be the last.
            if (pending is { } p) read.Add(Parse(path, p.Line, p.Text, last: false, warnings, check)!);
            pending = (number, line);
        }
        if (pending is { } final && Parse(path, final.Line, final.Text, last: true, warnings, check) is { } o) read.Add(o);
        return read;
    }

    private static T? Parse<T>(string path, int line, string text, bool last, ICollection<string> warnings, Func<T, string?> check) where T : class
    {
        string why;
        try
        {
            if (!text.TrimStart().StartsWith('{')) why = "not a JSON object";
            else if (JsonSerializer.Deserialize<T>(text, RecordSchema.ReadOptions) is { } value)
            {
                if (check(value) is not { } missing) return value;
                // A whole line that lacks what the reader needs: not a torn write, whatever its place.
                throw new DescriptionException($"{path}, line {line}: a field is missing or has the wrong type ({missing}).") { File = path };
            }
            else why = "not a JSON object";
        }
        catch (JsonException e)
        {
            why = $"not a JSON object of a run file ({e.Message.Split(" LineNumber:")[0]})";
        }
        if (last && !text.TrimEnd().EndsWith('}'))
        {
            warnings.Add($"{path}, line {line}: the last line is cut off (the run stopped while writing it, for example on a full disk); it was skipped and the {line - 1} lines before it were read.");
            return null;
        }
        throw new DescriptionException($"{path}, line {line}: {why}. Only a cut-off last line is skipped; this one is inside the file, so the file is damaged or was edited.") { File = path };
    }
}

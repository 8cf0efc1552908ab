using System.Text.Json;
using System.Text.Json.Serialization;

namespace AiOs.Planner.Descriptions;

/// <summary>The one JSON convention of every description file: snake_case keys, enums as snake_case strings, comments allowed.</summary>
public static class DescriptionJson
{
    /// <summary>Options for reading and writing models, profiles and settings.</summary>
    public static JsonSerializerOptions Options { get; } = Create();

    /// <summary>
    /// Options for writing a description file: <see cref="Options"/> without computed (get-only) properties, which are not part
    /// of the format (a profile's ram, a kernel fit's durations beside the figures they come from), and with text written as
    /// text (an apostrophe, ×) rather than \u escapes, so a file written back differs from the hand-written one only where it
    /// changed.
    /// </summary>
    public static JsonSerializerOptions WriteOptions { get; } = new(Options)
    {
        IgnoreReadOnlyProperties = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private static JsonSerializerOptions Create()
    {
        var options = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            ReadCommentHandling = JsonCommentHandling.Skip,
            AllowTrailingCommas = true,
            WriteIndented = true,
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
            UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
            RespectNullableAnnotations = true,
            RespectRequiredConstructorParameters = true,
        };
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower, allowIntegerValues: false));
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }

    /// <summary>Reads <paramref name="path"/> as <typeparamref name="T"/>, turning any JSON error into a message that names the file, line and field.</summary>
    public static T ReadFile<T>(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DescriptionException($"Cannot read {path}: {e.Message}", e) { File = path };
        }
        return Parse<T>(text, path);
    }

    /// <summary>Parses <paramref name="json"/>; <paramref name="source"/> names it in errors.</summary>
    public static T Parse<T>(string json, string source)
    {
        try
        {
            return JsonSerializer.Deserialize<T>(json, Options)
                ?? throw new DescriptionException($"{source}: the file holds JSON null; expected an object.") { File = source };
        }
        catch (JsonException e)
        {
            string line = e.LineNumber is { } l ? $", line {l + 1}" : "";
            string field = string.IsNullOrEmpty(e.Path) ? "" : $", field {e.Path}";
            string detail = e.Message.Split(" Path:")[0];
            throw new DescriptionException($"{source}{line}{field}: {detail}") { File = source, Field = e.Path };
        }
    }

    /// <summary>Writes <paramref name="value"/> to <paramref name="path"/> atomically: a temporary file in the same folder, flushed, then renamed over the target.</summary>
    public static void WriteFileAtomic<T>(string path, T value)
    {
        string json = JsonSerializer.Serialize(value, WriteOptions) + "\n";
        AtomicFile.WriteAllText(path, json);
    }
}

/// <summary>Writes files so that a reader sees either the old content or the whole new content, never half.</summary>
public static class AtomicFile
{
    /// <summary>Replaces <paramref name="path"/> with <paramref name="text"/> through a temporary file in the same folder; a failure names <paramref name="path"/>, not the temporary file.</summary>
    /// <exception cref="IOException">The write failed (the message names the file and says when the disk is full); the old content is kept.</exception>
    public static void WriteAllText(string path, string text)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        string temp = Path.Combine(dir, $".{Path.GetFileName(full)}.{System.Environment.ProcessId}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
            using (var writer = new StreamWriter(stream))
            {
                writer.Write(text);
                writer.Flush();
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch (IOException e)
        {
            throw WriteFailed(full, e);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>Whether <paramref name="e"/> is a full disk or quota: .NET on Linux carries an unmapped errno (ENOSPC 28, EDQUOT 122) as the HResult.</summary>
    public static bool IsDiskFull(IOException e) => e?.HResult is Enospc or Edquot;

    /// <summary>An <see cref="IOException"/> that names <paramref name="path"/> and says "disk full" when <paramref name="e"/> is one (see <see cref="IsDiskFull"/>).</summary>
    public static IOException WriteFailed(string path, IOException e)
    {
        ArgumentNullException.ThrowIfNull(e);
        return IsDiskFull(e)
            ? new IOException($"Writing '{path}' failed: disk full (errno {e.HResult}: {e.Message}). Free space on that drive, or write to another folder.", e) { HResult = e.HResult }
            : new IOException($"Writing '{path}' failed: {e.Message}", e) { HResult = e.HResult };
    }

    private const int Enospc = 28, Edquot = 122;
}

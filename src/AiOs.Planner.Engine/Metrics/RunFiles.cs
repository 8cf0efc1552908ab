using System.Text;

namespace AiOs.Planner.Engine.Metrics;

/// <summary>Writes run files so a reader never sees half of one: whole files via a temporary copy and a rename, JSON lines one write each.</summary>
public static class RunFiles
{
    /// <summary>Replaces <paramref name="path"/> with <paramref name="text"/> atomically (Core's <see cref="Descriptions.AtomicFile"/>).</summary>
    public static void WriteAtomic(string path, string text) => Descriptions.AtomicFile.WriteAllText(path, text);

    /// <summary>Appends one line (no newlines inside) with a single write, flushed.</summary>
    public static void AppendLine(string path, string line)
    {
        if (line.Contains('\n', StringComparison.Ordinal)) throw new ArgumentException("A JSON line must not contain newlines.", nameof(line));
        using var stream = new FileStream(path, FileMode.Append, FileAccess.Write);
        stream.Write(Encoding.UTF8.GetBytes(line + "\n"));
        stream.Flush(flushToDisk: true);
    }
}

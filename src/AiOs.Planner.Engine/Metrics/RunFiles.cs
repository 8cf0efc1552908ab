using System.Text;
using AiOs.Planner.Descriptions;

namespace AiOs.Planner.Engine.Metrics;

/// <summary>
/// Writes run files so a reader never sees half of one: whole files via a temporary copy and a rename, JSON lines
/// one write each. A failed write names the file it was writing (and says "disk full" from the errno); a line the
/// disk took only partly is cut off again, so the file ends with its last whole line.
/// </summary>
public static class RunFiles
{
    /// <summary>Replaces <paramref name="path"/> with <paramref name="text"/> atomically (Core's <see cref="AtomicFile"/>).</summary>
    /// <exception cref="IOException">The write failed; the message names <paramref name="path"/>.</exception>
    public static void WriteAtomic(string path, string text) => AtomicFile.WriteAllText(path, text);

    /// <summary>Appends one line (no newlines inside) with a single write, flushed.</summary>
    /// <exception cref="IOException">The append failed (the message names <paramref name="path"/>); the file is as it was before.</exception>
    public static void AppendLine(string path, string line) => AppendLine(path, line, static (stream, bytes) => stream.Write(bytes));

    /// <summary>As <see cref="AppendLine(string, string)"/>, with the write itself given (tests make it fail partway).</summary>
    internal static void AppendLine(string path, string line, Action<FileStream, byte[]> write)
    {
        if (line.Contains('\n', StringComparison.Ordinal)) throw new ArgumentException("A JSON line must not contain newlines.", nameof(line));
        byte[] bytes = Encoding.UTF8.GetBytes(line + "\n");
        FileStream stream;
        try
        {
            // Unbuffered, at the end found on opening: a failed write can be cut back to exactly that length (append mode forbids it).
            stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.Write, FileShare.Read, bufferSize: 0);
        }
        catch (IOException e)
        {
            throw AtomicFile.WriteFailed(path, e);
        }
        using (stream)
        {
            long before = stream.CanSeek ? stream.Seek(0, SeekOrigin.End) : -1;
            try
            {
                write(stream, bytes);
                stream.Flush(flushToDisk: true);
            }
            catch (IOException e)
            {
                CutBack(stream, before);
                throw AtomicFile.WriteFailed(path, e);
            }
        }
    }

    /// <summary>Truncates to <paramref name="length"/> after a failed append; best effort (a device such as /dev/full cannot be truncated, and a full disk still allows shrinking).</summary>
    private static void CutBack(FileStream stream, long length)
    {
        if (length < 0) return;
        try
        {
            stream.SetLength(length);
        }
        catch (Exception e) when (e is IOException or NotSupportedException or ArgumentException)
        {
            // Nothing more to do: readers skip a torn last line and say so.
        }
    }
}

using System.Text;
using System.Text.Json;

namespace AiOs.Planner.Engine.Runs;

/// <summary>
/// The folder <c>runs/&lt;id&gt;/</c> of one run, held for as long as the run writes to it: a lock file held open
/// exclusively (an OS lock, flock on Linux, released by the kernel if the process dies) keeps a second process
/// with the same id out, and it is taken before anything in the folder is read, reset or written.
/// </summary>
public sealed class RunFolder : IDisposable
{
    /// <summary>The lock file's name; the only entry an unused run folder may hold.</summary>
    public const string LockName = ".lock";
    private readonly FileStream _lock;

    private RunFolder(string path, FileStream lockFile)
    {
        Path = path;
        _lock = lockFile;
    }

    /// <summary>The folder.</summary>
    public string Path { get; }

    /// <summary>
    /// Creates and locks <c>&lt;runsRoot&gt;/&lt;runId&gt;/</c>. A folder that already holds files is refused unless the run resumes from a
    /// checkpoint inside it (<paramref name="resumeFrom"/>): then its history continues, and <see cref="KeepStepsUpTo"/> drops what came after the checkpoint.
    /// </summary>
    /// <param name="runsRoot">Folder that holds the run folders.</param>
    /// <param name="runId">The run's id (a plain name, <see cref="RunId"/>).</param>
    /// <param name="resumeFrom">The checkpoint folder the run continues from; null for a new run.</param>
    /// <param name="group">
    /// A rank above 0 of a data-parallel group: rank 0's run folder, which holds the group's checkpoints; a checkpoint inside it
    /// continues this rank's folder too. Null otherwise.
    /// </param>
    /// <exception cref="IOException">Another process holds the folder, or it holds another run.</exception>
    public static RunFolder Open(string runsRoot, string runId, string? resumeFrom, string? group = null)
    {
        string path = System.IO.Path.GetFullPath(System.IO.Path.Combine(runsRoot, RunId.Check(runId)));
        try
        {
            Directory.CreateDirectory(path);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new IOException($"Cannot create the run folder '{path}' (--runs-dir '{runsRoot}'): {e.Message}", e);
        }
        FileStream lockFile;
        try
        {
            lockFile = new FileStream(System.IO.Path.Combine(path, LockName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw new IOException($"The run folder '{path}' is in use by another aios train process (its {LockName} is locked). " +
                "Wait for that run to end, or pick another --run-id.", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new IOException($"The run folder '{path}' is not writable: {e.Message}", e);
        }
        try
        {
            string[] held = Directory.EnumerateFileSystemEntries(path).Select(System.IO.Path.GetFileName).Where(n => n != LockName).Order().ToArray()!;
            bool continues = resumeFrom is not null && (IsInside(System.IO.Path.GetFullPath(resumeFrom), path)
                || (group is not null && IsInside(System.IO.Path.GetFullPath(resumeFrom), System.IO.Path.GetFullPath(group))));
            if (held.Length > 0 && !continues)
            {
                string what = string.Join(", ", held.Take(5)) + (held.Length > 5 ? ", …" : "");
                throw new IOException($"The run folder '{path}' already holds a run ({what}); a run never replaces another's files. " +
                    (resumeFrom is null
                        ? $"Pick another --run-id, or continue that run with --resume {path}."
                        : $"--resume '{resumeFrom}' is not one of its checkpoints: pick another --run-id for the resumed run, or resume from {path}."));
            }
            lockFile.SetLength(0);
            lockFile.Write(Encoding.ASCII.GetBytes($"{Environment.ProcessId}\n"));
            lockFile.Flush();
            return new RunFolder(path, lockFile);
        }
        catch
        {
            lockFile.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Drops the lines of <c>metrics.jsonl</c> and <c>trace.jsonl</c> whose step is after <paramref name="step"/> (the checkpoint a resumed
    /// run continues from), so the resumed run appends without repeating steps. A line that cannot be read (torn by a killed process) is
    /// dropped too. Each file is replaced atomically: the kept lines go to a temporary file that is then renamed over it.
    /// </summary>
    public void KeepStepsUpTo(int step)
    {
        foreach (string name in new[] { "metrics.jsonl", "trace.jsonl" })
        {
            string file = System.IO.Path.Combine(Path, name);
            if (!File.Exists(file)) continue;
            string temp = System.IO.Path.Combine(Path, $".{name}.{Environment.ProcessId}.tmp");
            try
            {
                using (var writer = new StreamWriter(new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None), new UTF8Encoding(false)))
                {
                    foreach (string line in File.ReadLines(file))
                        if (StepOf(line) is { } s && s <= step) writer.Write(line + "\n");
                    writer.Flush();
                    ((FileStream)writer.BaseStream).Flush(flushToDisk: true);
                }
                File.Move(temp, file, overwrite: true);
            }
            finally
            {
                if (File.Exists(temp)) File.Delete(temp);
            }
        }
    }

    /// <summary>The <c>step</c> of a JSON line; null when the line is not a JSON object with a whole-number step.</summary>
    internal static int? StepOf(string line)
    {
        try
        {
            using JsonDocument doc = JsonDocument.Parse(line);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("step", out JsonElement s) && s.TryGetInt32(out int n) ? n : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static bool IsInside(string candidate, string folder) =>
        candidate.StartsWith(folder.TrimEnd('/') + "/", StringComparison.Ordinal) || candidate.TrimEnd('/') == folder.TrimEnd('/');

    /// <summary>Releases the lock (the lock file stays, so a waiting process never locks a file about to be removed).</summary>
    public void Dispose() => _lock.Dispose();
}

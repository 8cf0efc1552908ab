using AiOs.Planner.Descriptions;

namespace AiOs.Planner.Engine.Launch;

/// <summary>
/// Writes a folder of files atomically: everything goes into a hidden sibling folder first (each file flushed), and
/// only a complete folder is renamed into place, so a half-written folder is never presented as the result. An
/// existing non-empty folder is refused unless <c>force</c> is given; then the old one is moved aside, replaced, and
/// deleted only after the new one is in place.
/// </summary>
public static class LaunchFolder
{
    /// <summary>Why <paramref name="folder"/> cannot be written (a file, or a non-empty folder without <paramref name="force"/>), or null.</summary>
    public static string? Refusal(string folder, bool force)
    {
        string target = Path.GetFullPath(folder).TrimEnd(Path.DirectorySeparatorChar);
        if (File.Exists(target)) return $"{target} is a file; --out must name a folder.";
        if (!force && Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any())
            return $"{target} already exists and is not empty: choose a new --out folder, or add --force to replace it.";
        return null;
    }

    /// <summary>Writes <paramref name="files"/> (relative paths → text) as the folder <paramref name="folder"/>.</summary>
    /// <exception cref="IOException">The folder exists and is not empty and <paramref name="force"/> is false (the message names --force), or a write failed (nothing is left half-written).</exception>
    public static void Write(string folder, IReadOnlyDictionary<string, string> files, bool force, IReadOnlyCollection<string>? executables = null)
    {
        ArgumentNullException.ThrowIfNull(files);
        string target = Path.GetFullPath(folder).TrimEnd(Path.DirectorySeparatorChar);
        if (Refusal(folder, force) is { } refusal) throw new IOException(refusal);
        string parent = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(parent);
        string name = Path.GetFileName(target);
        string partial = Path.Combine(parent, $".{name}.partial-{System.Environment.ProcessId}");
        string aside = Path.Combine(parent, $".{name}.old-{System.Environment.ProcessId}");
        try
        {
            if (Directory.Exists(partial)) Directory.Delete(partial, recursive: true);
            foreach (var (relative, text) in files)
            {
                string path = Path.Combine(partial, relative);
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
                using (var writer = new StreamWriter(stream, leaveOpen: true)) writer.Write(text);
                stream.Flush(flushToDisk: true);
            }
            if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
                foreach (string relative in executables ?? [])
                {
                    string path = Path.Combine(partial, relative);
                    File.SetUnixFileMode(path, File.GetUnixFileMode(path) | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
                }
            if (Directory.Exists(target)) Directory.Move(target, aside);
            try
            {
                Directory.Move(partial, target);
            }
            catch (IOException)
            {
                if (Directory.Exists(aside)) Directory.Move(aside, target); // put the old folder back
                throw;
            }
            if (Directory.Exists(aside)) Directory.Delete(aside, recursive: true);
        }
        catch (IOException e)
        {
            throw AtomicFile.WriteFailed(target, e);
        }
        finally
        {
            if (Directory.Exists(partial)) Directory.Delete(partial, recursive: true);
        }
    }
}

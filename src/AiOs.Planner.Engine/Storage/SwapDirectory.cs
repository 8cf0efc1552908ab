namespace AiOs.Planner.Engine.Storage;

/// <summary>
/// The folder <c>&lt;nvme-path&gt;/aios-&lt;run id&gt;/</c> that holds one run's swap files. A lock file
/// held open exclusively (an OS lock, released if the process dies) keeps two runs from sharing it;
/// disposing removes the folder unless asked to keep it.
/// </summary>
public sealed class SwapDirectory : IDisposable
{
    private const string LockName = ".lock";
    private readonly FileStream _lock;
    private readonly bool _keep;

    private SwapDirectory(string path, FileStream lockFile, bool keep)
    {
        Path = path;
        _lock = lockFile;
        _keep = keep;
    }

    /// <summary>The folder.</summary>
    public string Path { get; }

    /// <summary>Creates and locks the folder for <paramref name="runId"/> under <paramref name="nvmePath"/>.</summary>
    /// <exception cref="IOException">The folder is locked by another run, or the path is not writable.</exception>
    public static SwapDirectory Acquire(string nvmePath, string runId, bool keep)
    {
        if (string.IsNullOrWhiteSpace(nvmePath)) throw new ArgumentException("An NVMe path is needed for NVMe offload (nvme_path).", nameof(nvmePath));
        string path = System.IO.Path.Combine(System.IO.Path.GetFullPath(nvmePath), "aios-" + runId);
        try
        {
            Directory.CreateDirectory(path);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new IOException($"Cannot create the swap folder '{path}' under nvme_path '{nvmePath}': {e.Message}", e);
        }
        FileStream lockFile;
        try
        {
            lockFile = new FileStream(System.IO.Path.Combine(path, LockName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw new IOException($"The swap folder '{path}' is in use by another run (its lock file is held).", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new IOException($"The swap folder '{path}' is not writable: {e.Message}", e);
        }
        lockFile.SetLength(0);
        lockFile.Write(System.Text.Encoding.ASCII.GetBytes($"{Environment.ProcessId}\n"));
        lockFile.Flush();
        return new SwapDirectory(path, lockFile, keep);
    }

    /// <summary>The path of a swap file named <paramref name="key"/> in the folder.</summary>
    public string FileFor(string key)
    {
        if (key.Length == 0 || key.StartsWith('.') || key.IndexOfAny(['/', '\\']) >= 0)
            throw new ArgumentException($"Swap key '{key}' is not a plain file name.", nameof(key));
        return System.IO.Path.Combine(Path, key);
    }

    /// <summary>Unlocks and, unless kept, deletes the folder and its files.</summary>
    public void Dispose()
    {
        _lock.Dispose();
        if (!_keep && Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
    }
}

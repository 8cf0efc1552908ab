using System.Globalization;
using System.Text;
using AiOs.Planner.Storage;
using Microsoft.Win32.SafeHandles;

namespace AiOs.Planner.Engine.Storage;

/// <summary>
/// The folder <c>&lt;nvme-path&gt;/aios-&lt;run id&gt;/</c> that holds one run's swap files. It is made fresh by this
/// process (mkdir, mode 0700; a link or someone else's folder there is refused), locked with flock on <c>.lock</c>
/// (released by the kernel if the process dies), and carries an owner record (<see cref="SwapOwner"/>) so
/// <c>aios check-nvme</c> and <c>aios clean</c> can tell a stale folder from a live one. Every swap path comes from
/// <see cref="FileFor"/>, which records the name in <c>.manifest</c> before the store creates the file; disposing
/// removes exactly those files and then the folder only if it is empty (never a recursive delete of a computed path).
/// </summary>
public sealed class SwapDirectory : IDisposable
{
    private readonly SafeFileHandle _folder;
    private readonly SafeFileHandle _lock;
    private readonly SafeFileHandle _manifest;
    private readonly HashSet<string> _recorded = new(StringComparer.Ordinal);
    private readonly bool _keep;
    private bool _disposed;

    private SwapDirectory(string path, SafeFileHandle folder, SafeFileHandle lockFile, SafeFileHandle manifest, bool keep)
    {
        Path = path;
        _folder = folder;
        _lock = lockFile;
        _manifest = manifest;
        _keep = keep;
    }

    /// <summary>The folder.</summary>
    public string Path { get; }

    /// <summary>Why the folder was left in place on <see cref="Dispose"/> (files the run did not create), or null.</summary>
    public string? LeftBehind { get; private set; }

    /// <summary>Creates and locks the folder for <paramref name="runId"/> under <paramref name="nvmePath"/>.</summary>
    /// <exception cref="ArgumentException">The run id is not a plain name, or no path is given.</exception>
    /// <exception cref="IOException">The folder exists and is not a stale one of ours, is locked by another run, a link is in the way, or the path is not writable.</exception>
    public static SwapDirectory Acquire(string nvmePath, string runId, bool keep)
    {
        if (string.IsNullOrWhiteSpace(nvmePath)) throw new ArgumentException("An NVMe path is needed for NVMe offload (nvme_path).", nameof(nvmePath));
        if (SwapFolders.RunIdProblem(runId) is { } badId) throw new ArgumentException(badId, nameof(runId));
        string root = System.IO.Path.GetFullPath(nvmePath);
        if (NoFollowFs.LinkRefusal(root, "nvme_path") is { } link) throw new IOException(link);
        string path = System.IO.Path.Combine(root, SwapFolders.Prefix + runId);
        MakeFresh(nvmePath, path);
        SafeFileHandle? folder = null, lockFile = null, manifest = null;
        try
        {
            Check(NoFollowFs.TryOpenFolder(path, out folder), path, "open");
            Check(NoFollowFs.TryCreateNewAt(folder, SwapFolders.LockName, out lockFile), path, "create the lock file in");
            if (!NoFollowFs.TryLockExclusive(lockFile)) throw new IOException($"The swap folder '{path}' is in use by another run (its lock file is held).");
            Check(NoFollowFs.TryCreateNewAt(folder, SwapFolders.ManifestName, out manifest, append: true), path, "create the manifest in");
            WriteOwner(folder, path, runId, keep);
            return new SwapDirectory(path, folder, lockFile, manifest, keep);
        }
        catch
        {
            manifest?.Dispose();
            // The folder is this process's own (made fresh above), so what is in it can go.
            if (folder is { IsInvalid: false }) SwapFolders.Remove(path, folder);
            else _ = NoFollowFs.TryRemoveFolder(path);
            lockFile?.Dispose();
            folder?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The path of the swap file named <paramref name="key"/>, recorded in the manifest before it is returned so the file
    /// is removed at the end even after a crash. Refused when the folder or the file's name has become a symbolic link.
    /// </summary>
    public string FileFor(string key)
    {
        if (SwapFolders.KeyProblem(key) is { } bad) throw new ArgumentException(bad, nameof(key));
        ObjectDisposedException.ThrowIf(_disposed, this);
        string file = System.IO.Path.Combine(Path, key);
        if (NoFollowFs.IsLink(Path))
            throw new IOException($"The swap folder '{Path}' has been replaced by a symbolic link; refusing to write swap data through it.");
        if (NoFollowFs.IsLink(file))
            throw new IOException($"The swap file '{file}' is a symbolic link (planted after the folder was made); refusing to write swap data through it.");
        lock (_recorded)
        {
            if (_recorded.Add(key)) RandomAccess.Write(_manifest, Encoding.UTF8.GetBytes(key + "\n"), RandomAccess.GetLength(_manifest));
        }
        return file;
    }

    /// <summary>Unless kept, removes the files <see cref="FileFor"/> handed out, the lock and the owner record, then the folder if empty.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _manifest.Dispose();
        if (!_keep)
        {
            var removal = SwapFolders.Remove(Path, _folder);
            LeftBehind = removal.Problem;
        }
        _lock.Dispose();
        _folder.Dispose();
    }

    /// <summary>mkdir the folder; where it exists, reclaim it only when it is a stale folder of ours (dead owner, lock free).</summary>
    private static void MakeFresh(string nvmePath, string path)
    {
        string root = System.IO.Path.GetDirectoryName(path)!;
        try
        {
            if (File.Exists(root)) throw new IOException($"nvme_path '{nvmePath}' is a file ({root}); give a folder for the swap files.");
            Directory.CreateDirectory(root);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new IOException($"Cannot create the swap folder '{path}' under nvme_path '{nvmePath}': {e.Message}", e);
        }
        int errno = NoFollowFs.TryMakeFolder(path);
        if (errno == NoFollowFs.Eexist)
        {
            if (NoFollowFs.IsLink(path))
                throw new IOException($"The swap folder '{path}' is a symbolic link (to {new FileInfo(path).LinkTarget}); swap files are never written through a link. Remove the link or pick another --run-id.");
            var state = SwapFolders.StateOf(path, out SwapOwner? owner);
            if (state == OwnerState.Alive) throw new IOException($"The swap folder '{path}' is in use by another run (its lock file is held, or its process {owner?.Pid} runs).");
            if (state == OwnerState.NotOurs)
                throw new IOException($"The swap folder '{path}' already exists and has no aios owner record, so it is not this tool's to use or delete. Pick another --run-id, or move it away yourself.");
            if (state == OwnerState.Unknown)
                throw new IOException($"The swap folder '{path}' belongs to a run on host {owner?.Host}; it is left alone. Pick another --run-id.");
            var removal = SwapFolders.Remove(path);
            if (!removal.Removed) throw new IOException($"The stale swap folder '{path}' of a dead run could not be reclaimed: {removal.Problem}");
            errno = NoFollowFs.TryMakeFolder(path);
        }
        if (errno != 0)
            throw new IOException($"Cannot create the swap folder '{path}' under nvme_path '{nvmePath}': {NoFollowFs.Describe(errno)}.");
    }

    private static void WriteOwner(SafeFileHandle folder, string path, string runId, bool keep)
    {
        var me = ProcessIdentity.Current();
        var owner = new SwapOwner
        {
            Pid = me.Pid, StartTicks = me.StartTicks, Host = me.Host, RunId = runId, Keep = keep,
            CreatedUtc = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
        };
        Check(NoFollowFs.TryCreateNewAt(folder, SwapFolders.OwnerName, out SafeFileHandle h), path, "write the owner record in");
        using (h) RandomAccess.Write(h, Encoding.UTF8.GetBytes(SwapFolders.ToJson(owner)), 0);
    }

    private static void Check(int errno, string path, string what)
    {
        if (errno != 0) throw new IOException($"Cannot {what} the swap folder '{path}': {NoFollowFs.Describe(errno)}.");
    }
}

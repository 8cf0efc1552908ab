using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace AiOs.Planner.Storage;

/// <summary>
/// File operations for the files and folders the tool creates in folders others may write to: created
/// exclusively (O_CREAT|O_EXCL|O_NOFOLLOW, mkdir), never following a symbolic link at the last component,
/// and removed by name relative to an open folder, so a link planted in between is never written or deleted through.
/// </summary>
public static partial class NoFollowFs
{
    // Linux values (x86-64 and arm64 agree on all of these).
    internal const int ORdonly = 0x0, ORdwr = 0x2, OCreat = 0x40, OExcl = 0x80, OAppend = 0x400, ODirectory = 0x10000, ONofollow = 0x20000, OCloexec = 0x80000, ODirect = 0x4000;
    /// <summary>errno values (Linux).</summary>
    public const int Eexist = 17, Enoent = 2, Ewouldblock = 11, Enotempty = 39, Eloop = 40, Einval = 22;
    private const int LockSh = 1, LockEx = 2, LockNb = 4, AtRemoveDir = 0x200, FGetfl = 3, FSetfl = 4;
    private const int Mode0600 = 0x180, Mode0700 = 0x1C0;

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "openat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenAt(SafeFileHandle dir, string name, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "unlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int UnlinkAt(SafeFileHandle dir, string name, int flags);

    [LibraryImport("libc", EntryPoint = "mkdir", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int MkDir(string path, int mode);

    [LibraryImport("libc", EntryPoint = "rmdir", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int RmDir(string path);

    [LibraryImport("libc", EntryPoint = "flock", SetLastError = true)]
    private static partial int Flock(SafeFileHandle fd, int operation);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(SafeFileHandle fd, int command, int argument);

    [LibraryImport("libc", EntryPoint = "realpath", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint RealPath(string path, nint resolved);

    [LibraryImport("libc", EntryPoint = "free")]
    private static partial void Free(nint pointer);

    /// <summary>The errno text, e.g. "File exists".</summary>
    public static string Describe(int errno) => Marshal.GetPInvokeErrorMessage(errno);

    /// <summary>Creates <paramref name="path"/> exclusively (0600, read-write), failing if anything, a link included, is already there; returns errno (0 on success).</summary>
    public static int TryCreateNew(string path, out SafeFileHandle handle, bool append = false)
    {
        int fd = Open(path, ORdwr | OCreat | OExcl | ONofollow | OCloexec | (append ? OAppend : 0), Mode0600);
        handle = new SafeFileHandle(fd, ownsHandle: fd >= 0);
        return fd >= 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>As <see cref="TryCreateNew(string, out SafeFileHandle, bool)"/> for <paramref name="name"/> inside the open folder <paramref name="dir"/>.</summary>
    public static int TryCreateNewAt(SafeFileHandle dir, string name, out SafeFileHandle handle, bool append = false)
    {
        int fd = OpenAt(dir, name, ORdwr | OCreat | OExcl | ONofollow | OCloexec | (append ? OAppend : 0), Mode0600);
        handle = new SafeFileHandle(fd, ownsHandle: fd >= 0);
        return fd >= 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>Opens an existing file read-only without following a link at the last component; returns errno (ELOOP for a link).</summary>
    public static int TryOpenExisting(string path, out SafeFileHandle handle)
    {
        int fd = Open(path, ORdonly | ONofollow | OCloexec, 0);
        handle = new SafeFileHandle(fd, ownsHandle: fd >= 0);
        return fd >= 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>As <see cref="TryOpenExisting"/> for <paramref name="name"/> inside the open folder <paramref name="dir"/>.</summary>
    public static int TryOpenExistingAt(SafeFileHandle dir, string name, out SafeFileHandle handle)
    {
        int fd = OpenAt(dir, name, ORdonly | ONofollow | OCloexec, 0);
        handle = new SafeFileHandle(fd, ownsHandle: fd >= 0);
        return fd >= 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>Opens a folder (never a link to one) so names inside it can be created and removed relative to it; returns errno.</summary>
    public static int TryOpenFolder(string path, out SafeFileHandle handle)
    {
        int fd = Open(path, ORdonly | ODirectory | ONofollow | OCloexec, 0);
        handle = new SafeFileHandle(fd, ownsHandle: fd >= 0);
        return fd >= 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>mkdir(2) with mode 0700: fails with EEXIST when anything, a link included, has the name; returns errno.</summary>
    public static int TryMakeFolder(string path) => MkDir(path, Mode0700) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>rmdir(2): removes an empty folder, never a link (ENOTDIR); returns errno (ENOTEMPTY when files remain).</summary>
    public static int TryRemoveFolder(string path) => RmDir(path) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>Removes the name <paramref name="name"/> in the open folder: a file, or a link itself (never its target); returns errno.</summary>
    public static int TryUnlinkAt(SafeFileHandle dir, string name) => UnlinkAt(dir, name, 0) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>Removes the empty folder <paramref name="name"/> inside the open folder; returns errno.</summary>
    public static int TryRemoveFolderAt(SafeFileHandle dir, string name) => UnlinkAt(dir, name, AtRemoveDir) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>Takes an exclusive advisory lock (flock) without waiting; false when another open file holds it. The kernel drops it when the process dies.</summary>
    public static bool TryLockExclusive(SafeFileHandle handle) => Flock(handle, LockEx | LockNb) == 0;

    /// <summary>True when a live process holds the flock on the file at <paramref name="path"/> (opened without following a link).</summary>
    public static bool IsLockHeld(string path)
    {
        if (TryOpenExisting(path, out SafeFileHandle h) != 0) return false;
        using (h)
        {
            return Flock(h, LockSh | LockNb) != 0 && Marshal.GetLastPInvokeError() == Ewouldblock;
        }
    }

    /// <summary>Turns on O_DIRECT for an open file (fcntl F_SETFL); false where the filesystem refuses it (EINVAL on tmpfs).</summary>
    public static bool TrySetDirect(SafeFileHandle handle)
    {
        int flags = Fcntl(handle, FGetfl, 0);
        return flags >= 0 && Fcntl(handle, FSetfl, flags | ODirect) == 0;
    }

    /// <summary>True when <paramref name="path"/> itself is a symbolic link (lstat: the link is not followed), dangling or not.</summary>
    public static bool IsLink(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget is not null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The first existing component of the absolute path <paramref name="fullPath"/> that is a symbolic link, or null when none is.</summary>
    public static string? FirstLinkIn(string fullPath)
    {
        string? current = System.IO.Path.GetPathRoot(fullPath);
        if (current is null) return null;
        foreach (string part in fullPath[current.Length..].Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            current = System.IO.Path.Combine(current, part);
            if (IsLink(current)) return current;
            if (!Directory.Exists(current)) return null;
        }
        return null;
    }

    /// <summary>The canonical path (realpath(3): every link resolved), or null when it cannot be resolved.</summary>
    public static string? Resolve(string path)
    {
        nint p = RealPath(path, 0);
        if (p == 0) return null;
        try
        {
            return Marshal.PtrToStringUTF8(p);
        }
        finally
        {
            Free(p);
        }
    }

    /// <summary>
    /// Null when <paramref name="fullPath"/> has no link in it; else the message refusing it, naming the link and the
    /// resolved path to pass instead (a planted link would otherwise send files, or a deletion, somewhere else).
    /// </summary>
    public static string? LinkRefusal(string fullPath, string what)
    {
        string? link = FirstLinkIn(fullPath);
        if (link is null) return null;
        string target = new FileInfo(link).LinkTarget ?? "?";
        string resolved = Resolve(fullPath) ?? Resolve(link) ?? "(it does not resolve)";
        return $"{what} {fullPath} goes through the symbolic link {link} -> {target}; files are never written through a link. If that is where you mean, pass the resolved path {resolved}.";
    }
}

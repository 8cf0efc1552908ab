using System.Runtime.InteropServices;
using AiOs.Planner.IO.Native;
using AiOs.Planner.Units;
using Microsoft.Win32.SafeHandles;

namespace AiOs.Planner.IO;

/// <summary>How a <see cref="DirectFile"/> is opened.</summary>
public enum DirectFileMode
{
    /// <summary>Read an existing file.</summary>
    Read,
    /// <summary>Read and write; the file is created when missing and never truncated.</summary>
    ReadWrite,
    /// <summary>Read and write a file created here and now (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600): fails if anything, a link included, has the name.</summary>
    CreateNew,
}

/// <summary>
/// A file opened with O_DIRECT, so reads and writes bypass the page cache and move between the drive and
/// an <see cref="AlignedBuffer"/>. Where the filesystem refuses O_DIRECT (EINVAL: tmpfs on older kernels,
/// character devices, some network filesystems) it is opened buffered and <see cref="FallbackWarning"/>
/// says so. Synchronous <see cref="Read"/>/<see cref="Write"/> are here; queued asynchronous I/O is
/// <see cref="AsyncIoEngine"/>.
/// </summary>
public sealed unsafe class DirectFile : IDisposable
{
    private DirectFile(string path, SafeFileHandle handle, bool isDirect, string? fallbackWarning)
    {
        Path = path;
        Handle = handle;
        IsDirect = isDirect;
        FallbackWarning = fallbackWarning;
    }

    /// <summary>The path as opened.</summary>
    public string Path { get; }

    /// <summary>The descriptor; closing it (Dispose) while I/O is in flight fails that I/O.</summary>
    public SafeFileHandle Handle { get; }

    /// <summary>True when O_DIRECT is in effect; false after a fallback to buffered I/O.</summary>
    public bool IsDirect { get; }

    /// <summary>Why O_DIRECT could not be used, or null when it is.</summary>
    public string? FallbackWarning { get; }

    /// <summary>Current length of the file.</summary>
    public Bytes Length => new(RandomAccess.GetLength(Handle));

    internal int Descriptor => (int)Handle.DangerousGetHandle();

    /// <summary>Opens <paramref name="path"/> with O_DIRECT, falling back to buffered I/O with a warning where O_DIRECT is unsupported.</summary>
    public static DirectFile Open(string path, DirectFileMode mode)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (mode == DirectFileMode.CreateNew) return CreateNew(path);
        int flags = LibC.O_CLOEXEC | (mode == DirectFileMode.Read ? LibC.O_RDONLY : LibC.O_RDWR | LibC.O_CREAT);
        const int mode0644 = 0x1A4;
        int fd = LibC.Open(path, flags | LibC.O_DIRECT, mode0644);
        if (fd >= 0) return new DirectFile(path, new SafeFileHandle(fd, ownsHandle: true), true, null);
        int errno = Marshal.GetLastPInvokeError();
        if (errno != LibC.EINVAL) throw OpenError(errno, path);
        fd = LibC.Open(path, flags, mode0644);
        if (fd < 0) throw OpenError(Marshal.GetLastPInvokeError(), path);
        string warning = $"{path}: this filesystem or device does not support O_DIRECT; using buffered I/O, so reads may be served from the page cache and rates overstate the drive.";
        return new DirectFile(path, new SafeFileHandle(fd, ownsHandle: true), false, warning);
    }

    /// <summary>
    /// Creates the file exclusively without O_DIRECT, then turns O_DIRECT on with fcntl: opening with O_CREAT|O_DIRECT
    /// on tmpfs creates the file and then fails with EINVAL, which would leave it behind.
    /// </summary>
    private static DirectFile CreateNew(string path)
    {
        int errno = Storage.NoFollowFs.TryCreateNew(path, out SafeFileHandle handle);
        if (errno != 0) throw OpenError(errno, path);
        if (Storage.NoFollowFs.TrySetDirect(handle)) return new DirectFile(path, handle, true, null);
        string warning = $"{path}: this filesystem or device does not support O_DIRECT; using buffered I/O, so reads may be served from the page cache and rates overstate the drive.";
        return new DirectFile(path, handle, false, warning);
    }

    private static DirectIoException OpenError(int errno, string path) =>
        errno == LibC.EINVAL
            ? new DirectIoException($"open {path}: {LibC.Describe(errno)} (errno {errno}).", errno)
            : DirectIoException.FromErrno(errno, "open", path);

    /// <summary>Reserves <paramref name="size"/> bytes on the drive (fallocate), so a full disk fails here rather than mid-run.</summary>
    public void Preallocate(Bytes size)
    {
        if (LibC.Fallocate(Descriptor, 0, 0, size.Value) == 0) return;
        int errno = Marshal.GetLastPInvokeError();
        // Filesystems without fallocate (EOPNOTSUPP = 95) simply get no reservation.
        if (errno != 95) throw DirectIoException.FromErrno(errno, "fallocate", Path);
    }

    /// <summary>Sets the file's length (ftruncate).</summary>
    public void SetLength(Bytes size)
    {
        if (LibC.Ftruncate(Descriptor, size.Value) != 0) throw DirectIoException.FromErrno(Marshal.GetLastPInvokeError(), "ftruncate", Path);
    }

    /// <summary>Waits until written data is on the drive (fdatasync).</summary>
    public void Flush()
    {
        if (LibC.Fdatasync(Descriptor) != 0) throw DirectIoException.FromErrno(Marshal.GetLastPInvokeError(), "fdatasync", Path);
    }

    /// <summary>Reads <paramref name="length"/> bytes at <paramref name="fileOffset"/> into the buffer at <paramref name="bufferOffset"/>; returns bytes read (fewer at end of file).</summary>
    public long Read(AlignedBuffer buffer, long bufferOffset, long length, long fileOffset) =>
        Transfer(buffer, bufferOffset, length, fileOffset, write: false);

    /// <summary>Writes <paramref name="length"/> bytes from the buffer at <paramref name="bufferOffset"/> to <paramref name="fileOffset"/>.</summary>
    public long Write(AlignedBuffer buffer, long bufferOffset, long length, long fileOffset) =>
        Transfer(buffer, bufferOffset, length, fileOffset, write: true);

    private long Transfer(AlignedBuffer buffer, long bufferOffset, long length, long fileOffset, bool write)
    {
        CheckRequest(buffer, bufferOffset, length, fileOffset);
        long done = 0;
        while (done < length)
        {
            byte* p = (byte*)buffer.Address + bufferOffset + done;
            nuint n = (nuint)Math.Min(length - done, 1L << 30);
            nint r = write ? LibC.PWrite(Descriptor, p, n, fileOffset + done) : LibC.PRead(Descriptor, p, n, fileOffset + done);
            if (r < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == LibC.EINTR) continue;
                throw DirectIoException.FromErrno(errno, write ? "write" : "read", Path);
            }
            if (r == 0) break; // end of file
            done += r;
        }
        return done;
    }

    /// <summary>Throws <see cref="MisalignedIoException"/> unless the request suits O_DIRECT, and when it runs past the buffer.</summary>
    internal void CheckRequest(AlignedBuffer buffer, long bufferOffset, long length, long fileOffset)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        if (bufferOffset < 0 || length < 0 || bufferOffset + length > buffer.Length)
            throw new ArgumentOutOfRangeException(nameof(length), $"Bytes {bufferOffset}..{bufferOffset + length} are outside the {buffer.Length}-byte buffer.");
        if (fileOffset < 0) throw new ArgumentOutOfRangeException(nameof(fileOffset), "A file offset cannot be negative.");
        if (!IsDirect) return;
        const int a = AlignedBuffer.Alignment;
        if (fileOffset % a != 0 || length % a != 0 || ((long)buffer.Address + bufferOffset) % a != 0)
            throw new MisalignedIoException(
                $"{Path}: O_DIRECT needs file offset, length and buffer address to be multiples of {a} bytes; got offset {fileOffset}, length {length}, buffer offset {bufferOffset}.");
    }

    public void Dispose() => Handle.Dispose();
}

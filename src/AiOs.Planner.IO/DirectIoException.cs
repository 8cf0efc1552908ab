using AiOs.Planner.IO.Native;

namespace AiOs.Planner.IO;

/// <summary>A direct-I/O operation failed; <see cref="Errno"/> is the Linux error number and the message names the file.</summary>
public class DirectIoException : IOException
{
    public DirectIoException() { }
    public DirectIoException(string message) : base(message) { }
    public DirectIoException(string message, Exception inner) : base(message, inner) { }
    public DirectIoException(string message, int errno) : base(message) => Errno = errno;

    /// <summary>The errno behind the failure; 0 when the check was made before calling the kernel.</summary>
    public int Errno { get; }

    /// <summary>The exception that fits <paramref name="errno"/>: disk full, misaligned, or a plain I/O error.</summary>
    public static DirectIoException FromErrno(int errno, string operation, string path)
    {
        string text = LibC.Describe(errno);
        return errno switch
        {
            LibC.ENOSPC or LibC.EDQUOT or LibC.EFBIG =>
                new DiskFullException($"{operation} {path}: {text} (errno {errno}). Free space on the drive or choose a smaller size.", errno),
            LibC.EINVAL =>
                new MisalignedIoException($"{operation} {path}: {text} (errno {errno}). With O_DIRECT the buffer address, length and file offset must be multiples of {AlignedBuffer.Alignment} bytes.", errno),
            LibC.EIO =>
                new DirectIoException($"{operation} {path}: {text} (errno {errno}): the device reported an I/O error; check the drive (dmesg).", errno),
            _ => new DirectIoException($"{operation} {path}: {text} (errno {errno}).", errno),
        };
    }
}

/// <summary>The drive or quota is full (ENOSPC, EDQUOT, EFBIG).</summary>
public sealed class DiskFullException : DirectIoException
{
    public DiskFullException() { }
    public DiskFullException(string message) : base(message) { }
    public DiskFullException(string message, Exception inner) : base(message, inner) { }
    public DiskFullException(string message, int errno) : base(message, errno) { }
}

/// <summary>A buffer address, length or file offset is not aligned as O_DIRECT requires (or the kernel said EINVAL).</summary>
public sealed class MisalignedIoException : DirectIoException
{
    public MisalignedIoException() { }
    public MisalignedIoException(string message) : base(message) { }
    public MisalignedIoException(string message, Exception inner) : base(message, inner) { }
    public MisalignedIoException(string message, int errno) : base(message, errno) { }
}

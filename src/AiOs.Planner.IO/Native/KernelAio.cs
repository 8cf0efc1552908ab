using System.Runtime.InteropServices;

namespace AiOs.Planner.IO.Native;

/// <summary>
/// Linux native AIO (io_setup, io_submit, io_getevents, io_destroy) through syscall(2), so no libaio is
/// needed. With O_DIRECT files the kernel keeps every submitted request in flight on the device at once,
/// which is what DeepSpeed's queue_depth means.
/// </summary>
internal static unsafe class KernelAio
{
    public const ushort OpRead = 0;
    public const ushort OpWrite = 1;

    private static readonly (long Setup, long Destroy, long Submit, long GetEvents) Numbers =
        RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => (206, 207, 209, 208),
            Architecture.Arm64 => (0, 1, 2, 4),
            _ => (-1, -1, -1, -1),
        };

    public static bool Supported => Numbers.Setup >= 0 && OperatingSystem.IsLinux();

    /// <summary>Creates a context for up to <paramref name="maxEvents"/> requests in flight; returns -errno on failure.</summary>
    public static int Setup(int maxEvents, out ulong context)
    {
        ulong ctx = 0;
        long r = LibC.Syscall(Numbers.Setup, maxEvents, (nint)(&ctx), 0, 0, 0);
        context = ctx;
        return r < 0 ? -Marshal.GetLastPInvokeError() : 0;
    }

    public static void Destroy(ulong context) => LibC.Syscall(Numbers.Destroy, (nint)context, 0, 0, 0, 0);

    /// <summary>Submits <paramref name="count"/> control blocks; returns how many were accepted or -errno.</summary>
    public static int Submit(ulong context, int count, Iocb** iocbs)
    {
        long r = LibC.Syscall(Numbers.Submit, (nint)context, count, (nint)iocbs, 0, 0);
        return r < 0 ? -Marshal.GetLastPInvokeError() : (int)r;
    }

    /// <summary>Waits for at least <paramref name="minEvents"/> completions; returns how many were reaped or -errno.</summary>
    public static int GetEvents(ulong context, int minEvents, int maxEvents, IoEvent* events)
    {
        long r = LibC.Syscall(Numbers.GetEvents, (nint)context, minEvents, maxEvents, (nint)events, 0);
        return r < 0 ? -Marshal.GetLastPInvokeError() : (int)r;
    }
}

/// <summary>struct iocb of linux/aio_abi.h (64 bytes, little-endian layout).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct Iocb
{
    public ulong Data;
    public uint Key;
    public int RwFlags;
    public ushort Opcode;
    public short RequestPriority;
    public uint FileDescriptor;
    public ulong Buffer;
    public ulong Bytes;
    public long Offset;
    public ulong Reserved2;
    public uint Flags;
    public uint ResultFd;
}

/// <summary>struct io_event of linux/aio_abi.h (32 bytes): <see cref="Result"/> is bytes moved or -errno.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoEvent
{
    public ulong Data;
    public ulong Object;
    public long Result;
    public long Result2;
}

using System.Runtime.InteropServices;
using AiOs.Planner.IO;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Host;

/// <summary>
/// Probe buffers backed as the engine's host buffers are: the engine maps its state with <c>MADV_HUGEPAGE</c>
/// (<c>HostBuffer</c>), so on a host whose transparent huge pages are <c>madvise</c> (the GPU VMs') a probe on 4 KiB pages
/// would pay page walks and faults the engine does not.
/// </summary>
internal static partial class HugePages
{
    private const int MadvHugePage = 14;

    /// <summary>An aligned buffer of <paramref name="size"/> bytes, advised to huge pages before its first touch (best effort: elsewhere a plain buffer).</summary>
    public static AlignedBuffer Allocate(Bytes size)
    {
        var buffer = new AlignedBuffer(size);
        if (OperatingSystem.IsLinux()) _ = Madvise(buffer.Address, (nuint)buffer.Length, MadvHugePage);
        return buffer;
    }

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Madvise(nint address, nuint length, int advice);
}

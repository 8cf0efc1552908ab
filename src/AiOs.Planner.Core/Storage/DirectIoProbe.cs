using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace AiOs.Planner.Storage;

/// <summary>Tries one aligned O_DIRECT write in a folder: tmpfs and some network filesystems refuse it.</summary>
internal static class DirectIoProbe
{
    private const int Alignment = 4096;

    /// <summary>
    /// Creates a scratch file exclusively (unpredictable name, O_EXCL|O_NOFOLLOW, so a planted link is never written
    /// through), turns on O_DIRECT, writes one aligned block, and removes the file by name relative to the folder.
    /// </summary>
    public static unsafe bool Works(string folder)
    {
        if (!OperatingSystem.IsLinux()) return false;
        string name = ScratchNames.New(ScratchKind.DirectIoProbe);
        if (NoFollowFs.TryOpenFolder(folder, out SafeFileHandle dir) != 0) return false;
        using (dir)
        {
            if (NoFollowFs.TryCreateNewAt(dir, name, out SafeFileHandle file) != 0) return false;
            void* buffer = NativeMemory.AlignedAlloc(Alignment, Alignment);
            try
            {
                using (file)
                {
                    NativeMemory.Clear(buffer, Alignment);
                    if (!NoFollowFs.TrySetDirect(file)) return false;
                    RandomAccess.Write(file, new ReadOnlySpan<byte>(buffer, Alignment), 0);
                    return true;
                }
            }
            catch (IOException)
            {
                return false;
            }
            finally
            {
                NativeMemory.AlignedFree(buffer);
                _ = NoFollowFs.TryUnlinkAt(dir, name);
            }
        }
    }
}

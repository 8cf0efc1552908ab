using System.Runtime.InteropServices;

namespace AiOs.Planner.Storage;

/// <summary>Tries one aligned O_DIRECT write in a folder: tmpfs and some network filesystems refuse it.</summary>
internal static partial class DirectIoProbe
{
    private const int OWronly = 0x1, OCreat = 0x40, OTrunc = 0x200, ODirect = 0x4000;
    private const int Alignment = 4096;

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static unsafe partial nint Write(int fd, void* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);

    public static unsafe bool Works(string folder)
    {
        if (!OperatingSystem.IsLinux()) return false;
        string probe = Path.Combine(folder, $".aios-odirect-probe-{System.Environment.ProcessId}");
        void* buffer = NativeMemory.AlignedAlloc(Alignment, Alignment);
        try
        {
            NativeMemory.Clear(buffer, Alignment);
            int fd = Open(probe, OWronly | OCreat | OTrunc | ODirect, Convert.ToInt32("600", 8));
            if (fd < 0) return false;
            try
            {
                return Write(fd, buffer, Alignment) == Alignment;
            }
            finally
            {
                _ = Close(fd);
            }
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
            try
            {
                File.Delete(probe);
            }
            catch (IOException)
            {
                // The probe file is tiny; leaving it behind is harmless and reported nowhere.
            }
        }
    }
}

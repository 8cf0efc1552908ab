namespace AiOs.Planner.Engine.Native;

/// <summary>What <see cref="ElfVersionPatcher.MarkWeak"/> found and did.</summary>
public enum WeakPatchOutcome
{
    /// <summary>The file has no such requirement; it was left alone.</summary>
    NotRequired,
    /// <summary>The requirement was already weak; the file was left alone.</summary>
    AlreadyWeak,
    /// <summary>The flag was set and the file replaced.</summary>
    Patched,
}

/// <summary>
/// Marks one symbol-version requirement of an ELF shared object weak (sets <c>VER_FLG_WEAK</c> in its
/// <c>vna_flags</c>), so the dynamic loader accepts a system library that lacks that version. Only
/// the two flag bytes change. The new file is written beside the old one and renamed over it, so a
/// reader (or a crash) never sees a half-written library, and a process that has the old one mapped
/// keeps its inode.
/// </summary>
public static class ElfVersionPatcher
{
    /// <summary>Marks <paramref name="version"/> of <paramref name="library"/> weak in <paramref name="path"/>; idempotent.</summary>
    public static WeakPatchOutcome MarkWeak(string path, string library, string version)
    {
        byte[] image = File.ReadAllBytes(path);
        ElfVersionNeed? need = ElfVersionInfo.Parse(image, path).Needs
            .FirstOrDefault(n => n.File == library && n.Version == version);
        if (need is null) return WeakPatchOutcome.NotRequired;
        if (need.IsWeak) return WeakPatchOutcome.AlreadyWeak;

        ushort flags = (ushort)(need.Flags | ElfVersionNeed.WeakFlag);
        image[need.FlagsOffset] = (byte)(flags & 0xff);
        image[need.FlagsOffset + 1] = (byte)(flags >> 8);

        string directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        string temp = Path.Combine(directory, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
            {
                stream.Write(image);
                stream.Flush(flushToDisk: true);
            }
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(temp, File.GetUnixFileMode(path));
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
        return WeakPatchOutcome.Patched;
    }
}

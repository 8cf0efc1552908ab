using AiOs.Planner.Units;
using Microsoft.Win32.SafeHandles;

namespace AiOs.Planner.Storage;

/// <summary>One of the tool's swap folders or scratch files found in an offload folder, and whether its process lives.</summary>
public sealed record Leftover
{
    public required string Path { get; init; }
    public required ScratchKind Kind { get; init; }
    /// <summary>Bytes in regular files (a swap folder: its files, links not followed).</summary>
    public required Bytes Size { get; init; }
    public string? RunId { get; init; }
    public int? Pid { get; init; }
    public required OwnerState State { get; init; }
    /// <summary>Why the state is what it is, for people.</summary>
    public required string Note { get; init; }

    /// <summary>True when its process is dead on this host, so removing it loses nothing of a running job.</summary>
    public bool Stale => State == OwnerState.Dead;
}

/// <summary>What <see cref="Leftovers.Clean"/> did (or, on a dry run, would do) with one leftover.</summary>
public sealed record CleanOutcome(Leftover Item, bool Removed, string Note);

/// <summary>
/// Finds the tool's leftovers in an offload folder (swap folders left by a killed run, probe and calibration files left
/// by an interrupted one) and removes the stale ones: only recognised ones (owner record or scratch name), only of dead
/// processes on this host, never through a link.
/// </summary>
public static class Leftovers
{
    /// <summary>The swap folders and scratch files directly inside <paramref name="folder"/> (none when it does not exist).</summary>
    public static IReadOnlyList<Leftover> Find(string folder)
    {
        var found = new List<Leftover>();
        if (!Directory.Exists(folder)) return found;
        foreach (var entry in new DirectoryInfo(folder).EnumerateFileSystemInfos().OrderBy(e => e.Name, StringComparer.Ordinal))
        {
            bool link = entry.LinkTarget is not null;
            if (entry.Name.StartsWith(SwapFolders.Prefix, StringComparison.Ordinal) && (link || entry is DirectoryInfo))
                found.Add(SwapFolder(entry.FullName, link));
            else if (ScratchNames.Parse(entry.Name) is { } scratch)
                found.Add(new Leftover
                {
                    Path = entry.FullName,
                    Kind = scratch.Kind,
                    Size = link || entry is not FileInfo f ? Bytes.Zero : new Bytes(f.Length),
                    Pid = scratch.Pid,
                    State = link ? OwnerState.NotOurs : scratch.State,
                    Note = link ? "a symbolic link with a scratch name: not ours, left alone" : Describe(scratch.State, scratch.Pid),
                });
        }
        return found;
    }

    /// <summary>Removes the stale leftovers in <paramref name="folder"/> (only says what it would remove when <paramref name="dryRun"/>).</summary>
    public static IReadOnlyList<CleanOutcome> Clean(string folder, bool dryRun)
    {
        var outcomes = new List<CleanOutcome>();
        foreach (Leftover item in Find(folder))
        {
            if (!item.Stale) outcomes.Add(new CleanOutcome(item, false, $"kept: {item.Note}"));
            else if (dryRun) outcomes.Add(new CleanOutcome(item, false, "would be removed (dry run)"));
            else if (item.Kind == ScratchKind.SwapFolder)
            {
                var removal = SwapFolders.Remove(item.Path);
                outcomes.Add(new CleanOutcome(item, removal.Removed, removal.Removed ? "removed" : removal.Problem!));
            }
            else outcomes.Add(new CleanOutcome(item, RemoveFile(folder, item.Path, out string note), note));
        }
        return outcomes;
    }

    /// <summary>A warning for the start of a run when <paramref name="folder"/> holds stale swap data, or null when it holds none.</summary>
    public static string? StaleWarning(string folder) => StaleWarning(Find(folder), folder);

    /// <summary>As <see cref="StaleWarning(string)"/> from an earlier <see cref="Find"/>.</summary>
    public static string? StaleWarning(IReadOnlyList<Leftover> found, string folder)
    {
        var stale = found.Where(l => l.Stale).ToList();
        if (stale.Count == 0) return null;
        Bytes total = stale.Aggregate(Bytes.Zero, (sum, l) => sum + l.Size);
        return $"{folder} holds {stale.Count} stale leftover(s) of runs that are no longer running ({total}: {string.Join(", ", stale.Take(3).Select(l => System.IO.Path.GetFileName(l.Path)))}{(stale.Count > 3 ? ", ..." : "")}). `aios clean {folder}` removes them; `aios check-nvme {folder}` lists them.";
    }

    private static Leftover SwapFolder(string path, bool link)
    {
        if (link)
            return new Leftover { Path = path, Kind = ScratchKind.SwapFolder, Size = Bytes.Zero, State = OwnerState.NotOurs, Note = "a symbolic link named like a swap folder: not ours, left alone" };
        var state = SwapFolders.StateOf(path, out SwapOwner? owner);
        string note = state switch
        {
            OwnerState.NotOurs => "no valid owner record (not made by this version of aios, or not by aios): left alone",
            OwnerState.Alive when owner is null || owner.Process.State() != OwnerState.Alive => "its lock is held: a run is using it",
            OwnerState.Unknown => $"made on host {owner!.Host}: cannot tell from here whether it runs",
            _ => Describe(state, owner!.Pid) + (owner.Keep ? "; kept on purpose (--keep-swap-files)" : "") + $"; created {owner.CreatedUtc}",
        };
        return new Leftover { Path = path, Kind = ScratchKind.SwapFolder, Size = SizeOf(path), RunId = owner?.RunId, Pid = owner?.Pid, State = state, Note = note };
    }

    private static string Describe(OwnerState state, int pid) => state switch
    {
        OwnerState.Alive => $"process {pid} is running",
        OwnerState.Dead => $"process {pid} is gone (stale)",
        _ => $"process {pid}: cannot tell whether it is the one that made it (older name without start time, or another host)",
    };

    private static bool RemoveFile(string folder, string path, out string note)
    {
        int errno = NoFollowFs.TryOpenFolder(folder, out SafeFileHandle dir);
        if (errno == 0)
        {
            using (dir)
            {
                errno = NoFollowFs.TryUnlinkAt(dir, System.IO.Path.GetFileName(path));
            }
        }
        note = errno == 0 ? "removed" : $"could not be removed: {NoFollowFs.Describe(errno)}";
        return errno == 0;
    }

    private static Bytes SizeOf(string folder)
    {
        try
        {
            long sum = new DirectoryInfo(folder).EnumerateFiles().Where(f => f.LinkTarget is null).Sum(f => f.Length);
            return new Bytes(sum);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Bytes.Zero;
        }
    }
}

using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using Microsoft.Win32.SafeHandles;

namespace AiOs.Planner.Storage;

/// <summary>
/// The owner record <c>.owner.json</c> a run writes into its swap folder: who made it (pid, start time, host),
/// for which run, when, and whether the run asked to keep it. Without it a folder named <c>aios-*</c> is not ours.
/// </summary>
public sealed record SwapOwner
{
    /// <summary>Identifies the record's format, so a foreign JSON file is not mistaken for one.</summary>
    public const string CurrentFormat = "aios-swap-owner/1";

    [JsonPropertyName("format")] public string Format { get; init; } = CurrentFormat;
    [JsonPropertyName("pid")] public required int Pid { get; init; }
    /// <summary>Clock ticks after boot at which the process started (/proc/&lt;pid&gt;/stat field 22).</summary>
    [JsonPropertyName("start_ticks")] public required long StartTicks { get; init; }
    [JsonPropertyName("host")] public required string Host { get; init; }
    [JsonPropertyName("run_id")] public required string RunId { get; init; }
    /// <summary>When the folder was made, ISO 8601 UTC (for people reading the listing).</summary>
    [JsonPropertyName("created_utc")] public required string CreatedUtc { get; init; }
    /// <summary>True when the run was told to keep its swap files (--keep-swap-files).</summary>
    [JsonPropertyName("keep")] public bool Keep { get; init; }

    /// <summary>The process that made the folder.</summary>
    public ProcessIdentity Process => new(Pid, StartTicks, Host);
}

/// <summary>What removing a swap folder left behind (nothing when <see cref="Removed"/>).</summary>
public sealed record FolderRemoval(bool Removed, IReadOnlyList<string> LeftBehind, string? Problem);

/// <summary>
/// Rules for one run's swap folder <c>&lt;nvme path&gt;/aios-&lt;run id&gt;/</c>: a plain run id, an owner record, a
/// manifest of the swap files the run created (<c>.manifest</c>, one name a line, written before each file is
/// created), and removal of exactly those files, after which the folder is removed only if it is empty.
/// </summary>
public static partial class SwapFolders
{
    /// <summary>The folder name is this prefix and the run id.</summary>
    public const string Prefix = "aios-";
    /// <summary>Held with flock while the run lives.</summary>
    public const string LockName = ".lock";
    /// <summary>The owner record.</summary>
    public const string OwnerName = ".owner.json";
    /// <summary>The names of the swap files the run created.</summary>
    public const string ManifestName = ".manifest";

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    private static partial Regex PlainRunId();

    /// <summary>Null when <paramref name="runId"/> is a plain name (letters, digits, '.', '_', '-'; starts with a letter or digit; at most 128); else why not.</summary>
    public static string? RunIdProblem(string? runId) =>
        runId is not null && PlainRunId().IsMatch(runId) ? null
            : $"Run id '{runId}' is not a plain name: use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit (no '/', no '..' path), e.g. --run-id exp-1.";

    /// <summary>Null when <paramref name="key"/> can name a swap file in the folder; else why not.</summary>
    public static string? KeyProblem(string key) =>
        key.Length == 0 || key.StartsWith('.') || key.IndexOfAny(['/', '\\', '\0']) >= 0 ? $"Swap key '{key}' is not a plain file name." : null;

    /// <summary>The owner record's JSON.</summary>
    public static string ToJson(SwapOwner owner) => JsonSerializer.Serialize(owner, JsonOptions);

    /// <summary>The owner record of the folder, or null when it has none, it is a link, or it is not ours.</summary>
    public static SwapOwner? ReadOwner(string folder)
    {
        if (NoFollowFs.TryOpenExisting(System.IO.Path.Combine(folder, OwnerName), out SafeFileHandle h) != 0) return null;
        try
        {
            using var stream = new FileStream(h, FileAccess.Read);
            if (stream.Length > 64 * 1024) return null;
            var owner = JsonSerializer.Deserialize<SwapOwner>(stream);
            return owner is { Format: SwapOwner.CurrentFormat } ? owner : null;
        }
        catch (Exception e) when (e is JsonException or IOException or NotSupportedException)
        {
            return null;
        }
    }

    /// <summary>
    /// Whether the swap folder's run is alive: its held lock says so first; else its owner record's process (pid and
    /// start time, on this host). A link, a folder without a valid owner record, or one whose record names another run id is not ours.
    /// </summary>
    public static OwnerState StateOf(string folder, out SwapOwner? owner)
    {
        owner = null;
        if (NoFollowFs.IsLink(folder) || !Directory.Exists(folder)) return OwnerState.NotOurs;
        owner = ReadOwner(folder);
        if (NoFollowFs.IsLockHeld(System.IO.Path.Combine(folder, LockName))) return OwnerState.Alive;
        if (owner is null || Prefix + owner.RunId != System.IO.Path.GetFileName(folder)) return OwnerState.NotOurs;
        return owner.Process.State();
    }

    /// <summary>
    /// Removes the files named in the manifest, then the manifest, the owner record and the lock, then the folder if
    /// it is empty. Names are removed relative to the folder opened without following links, so nothing outside it is touched.
    /// </summary>
    public static FolderRemoval Remove(string folder)
    {
        int errno = NoFollowFs.TryOpenFolder(folder, out SafeFileHandle dir);
        if (errno != 0)
            return new FolderRemoval(false, [], $"{folder} cannot be opened as a folder ({NoFollowFs.Describe(errno)}); a link is never followed. Left alone.");
        using (dir) return Remove(folder, dir);
    }

    /// <summary>As <see cref="Remove(string)"/> with the folder already open (the run's own handle).</summary>
    public static FolderRemoval Remove(string folder, SafeFileHandle dir)
    {
        foreach (string name in ReadManifest(dir).Append(ManifestName).Append(OwnerName).Append(LockName))
            _ = NoFollowFs.TryUnlinkAt(dir, name);
        int errno = NoFollowFs.TryRemoveFolder(folder);
        if (errno == 0 || errno == NoFollowFs.Enoent) return new FolderRemoval(true, [], null);
        var left = errno == NoFollowFs.Enotempty ? Entries(folder) : [];
        string why = errno == NoFollowFs.Enotempty
            ? $"{folder} still holds files the run did not create ({string.Join(", ", left.Take(5))}{(left.Count > 5 ? ", ..." : "")}); it was left in place."
            : $"{folder} could not be removed: {NoFollowFs.Describe(errno)}.";
        return new FolderRemoval(false, left, why);
    }

    /// <summary>The plain names the manifest lists (anything else in it is ignored, so it can never name a path outside the folder).</summary>
    private static List<string> ReadManifest(SafeFileHandle dir)
    {
        if (NoFollowFs.TryOpenExistingAt(dir, ManifestName, out SafeFileHandle h) != 0) return [];
        using var stream = new FileStream(h, FileAccess.Read);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var names = new List<string>();
        while (reader.ReadLine() is { } line)
            if (KeyProblem(line) is null) names.Add(line);
        return names;
    }

    private static List<string> Entries(string folder)
    {
        try
        {
            return Directory.EnumerateFileSystemEntries(folder).Select(p => System.IO.Path.GetFileName(p)).Order(StringComparer.Ordinal).ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}

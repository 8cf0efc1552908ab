namespace AiOs.Planner.Engine.Runs;

/// <summary>
/// A run id is a name, never a path: it becomes <c>runs/&lt;id&gt;/</c> and the swap folder <c>aios-&lt;id&gt;</c>,
/// both of which are written and (the swap folder) deleted, so an id such as <c>x/..</c> or <c>../victim</c>
/// would aim those writes and deletions at another folder.
/// </summary>
public static class RunId
{
    /// <summary>
    /// Longest id accepted: a file name may have 255 bytes on Linux file systems, and the id also appears as
    /// <c>aios-&lt;id&gt;</c> and inside temporary names (<c>.&lt;name&gt;.&lt;pid&gt;.tmp</c>), so 128 leaves room.
    /// </summary>
    public const int MaxLength = 128;

    /// <summary>A new id: UTC time and a random suffix (<c>20261205-142501-3fa9c1</c>).</summary>
    public static string New() => DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", System.Globalization.CultureInfo.InvariantCulture) + "-" + Guid.NewGuid().ToString("N")[..6];

    /// <summary>Why <paramref name="id"/> cannot name a run, or null when it can (letters, digits, '.', '_', '-'; not '.' or '..').</summary>
    public static string? Problem(string? id)
    {
        if (string.IsNullOrEmpty(id)) return "it is empty";
        if (id is "." or "..") return $"'{id}' names a folder relative to the runs folder, not a run";
        if (id.Length > MaxLength) return $"it has {id.Length} characters, more than {MaxLength}";
        foreach (char c in id)
        {
            if (!IsAllowed(c))
            {
                string shown = char.IsControl(c) || char.IsWhiteSpace(c) ? $"U+{(int)c:X4}" : $"'{c}'";
                return $"'{Shown(id)}' contains {shown}; use only letters A-Z a-z, digits, '.', '_' and '-'";
            }
        }
        // One rule decides, the swap folder's (SwapFolders.RunIdProblem, which SwapDirectory applies too); the checks
        // above only word its common failures. What is left is a leading '.', which would make a hidden folder.
        return global::AiOs.Planner.Storage.SwapFolders.RunIdProblem(id) is null ? null : $"'{Shown(id)}' starts with '{id[0]}'; start with a letter or digit";
    }

    /// <summary>Returns <paramref name="id"/> when it is a valid run id; otherwise throws naming the problem and the fix.</summary>
    /// <param name="id">The candidate id.</param>
    /// <param name="source">Where it came from, for the message (for example "--run-id").</param>
    /// <exception cref="ArgumentException">The id is not a plain name.</exception>
    public static string Check(string? id, string source = "run id")
    {
        if (Problem(id) is { } why)
            throw new ArgumentException($"{source} is not a usable run id: {why}. A run id names the folder runs/<id>/ and must be a plain name " +
                $"(at most {MaxLength} of A-Z a-z 0-9 . _ -), for example my-run.1.");
        return id!;
    }

    private static bool IsAllowed(char c) => c is (>= 'A' and <= 'Z') or (>= 'a' and <= 'z') or (>= '0' and <= '9') or '.' or '_' or '-';

    /// <summary>The id with control characters escaped, cut to a readable length.</summary>
    private static string Shown(string id)
    {
        string s = new(id.Select(c => char.IsControl(c) ? '?' : c).ToArray());
        return s.Length <= 64 ? s : s[..64] + "…";
    }
}

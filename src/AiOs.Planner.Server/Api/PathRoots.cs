using AiOs.Planner.Descriptions;

namespace AiOs.Planner.Server.Api;

/// <summary>
/// The folders a path from the browser may name. A path is accepted only when, made absolute, it lies inside one of
/// them and no existing folder on the way is a symbolic link (a link could lead anywhere).
/// </summary>
internal sealed class PathRoots(IReadOnlyList<string> roots, string flag)
{
    private readonly string[] _roots = roots.Select(r => Path.TrimEndingDirectorySeparator(Path.GetFullPath(r))).ToArray();

    public IReadOnlyList<string> Roots => _roots;

    /// <summary>The absolute form of <paramref name="path"/>, or an error naming the allowed folders and the flag that adds one.</summary>
    public string Inside(string path, string field)
    {
        if (_roots.Length == 0)
            throw new DescriptionException($"\"{field}\" names a folder ({path}), but this server was started without {flag}: start `aios serve {flag} FOLDER` to allow folders inside FOLDER.");
        string full = Path.GetFullPath(path);
        foreach (string root in _roots)
        {
            if (!(full == root || full.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal))) continue;
            for (string? dir = full; dir is not null && dir.Length > root.Length; dir = Path.GetDirectoryName(dir))
                if (new DirectoryInfo(dir) is { Exists: true, LinkTarget: not null } || new FileInfo(dir) is { Exists: true, LinkTarget: not null })
                    throw new DescriptionException($"\"{field}\": {dir} is a symbolic link; give the folder it points to, inside {root}.");
            return full;
        }
        throw new DescriptionException($"\"{field}\": {full} is outside the folders this server may use ({string.Join(", ", _roots)}); choose a folder inside one, or start `aios serve {flag} FOLDER`.");
    }
}

namespace AiOs.Planner.Descriptions;

/// <summary>
/// Finds named description files (<c>NAME.json</c>) in a kind's folders: the current directory's
/// folder first (a user's own models and calibrated profiles), then the folder bundled with the tool.
/// </summary>
public sealed class Catalog
{
    private readonly IReadOnlyList<string> _folders;

    /// <param name="kind">The folder name and the noun used in messages: <c>models</c> or <c>profiles</c>.</param>
    /// <param name="folders">Folders to search, in order of precedence.</param>
    public Catalog(string kind, IReadOnlyList<string> folders)
    {
        Kind = kind;
        _folders = folders;
    }

    /// <summary>The default search path for <paramref name="kind"/>: <c>./kind</c>, then <c>&lt;tool&gt;/kind</c>.</summary>
    public static Catalog Default(string kind) =>
        new(kind, new[] { Path.Combine(Directory.GetCurrentDirectory(), kind), Path.Combine(AppContext.BaseDirectory, kind) }
            .Select(Path.GetFullPath).Distinct().ToArray());

    public string Kind { get; }

    public IReadOnlyList<string> Folders => _folders;

    /// <summary>Every name available, first folder winning, sorted.</summary>
    public IReadOnlyList<string> Names() =>
        _folders.Where(Directory.Exists)
            .SelectMany(f => Directory.EnumerateFiles(f, "*.json"))
            .Select(f => Path.GetFileNameWithoutExtension(f))
            .Where(n => !n.StartsWith('.'))
            .Distinct(StringComparer.OrdinalIgnoreCase)
            .Order(StringComparer.Ordinal)
            .ToArray();

    /// <summary>
    /// Resolves <paramref name="nameOrPath"/>: an existing file path is used as is; otherwise a name is
    /// looked up. An unknown name is an error listing what exists.
    /// </summary>
    public string Resolve(string nameOrPath)
    {
        if (string.IsNullOrWhiteSpace(nameOrPath))
            throw new DescriptionException($"No {Kind[..^1]} given. Available: {string.Join(", ", Names())}.");
        if (File.Exists(nameOrPath)) return Path.GetFullPath(nameOrPath);
        if (Directory.Exists(nameOrPath) && File.Exists(Path.Combine(nameOrPath, "config.json")))
            return Path.GetFullPath(Path.Combine(nameOrPath, "config.json"));
        foreach (string folder in _folders)
        {
            string candidate = Path.Combine(folder, nameOrPath + ".json");
            if (File.Exists(candidate)) return candidate;
        }
        bool looksLikePath = nameOrPath.Contains('/') || nameOrPath.EndsWith(".json", StringComparison.OrdinalIgnoreCase);
        string what = looksLikePath ? $"File '{nameOrPath}' does not exist" : $"Unknown {Kind[..^1]} '{nameOrPath}'";
        throw new DescriptionException(
            $"{what}. Available {Kind}: {string.Join(", ", Names())}. A path to a JSON file works too.")
        { File = nameOrPath };
    }
}

using AiOs.Planner.Descriptions;

namespace AiOs.Planner.Hardware;

/// <summary>Loads hardware profiles by bundled name or by path.</summary>
public sealed class ProfileCatalog
{
    private readonly Catalog _catalog;

    public ProfileCatalog(Catalog catalog) => _catalog = catalog;

    public static ProfileCatalog Default { get; } = new(Catalog.Default("profiles"));

    public IReadOnlyList<string> Names() => _catalog.Names();

    /// <summary>Loads and validates a profile; every error names the file and the field.</summary>
    public HardwareProfile Load(string nameOrPath) => LoadFile(_catalog.Resolve(nameOrPath));

    public static HardwareProfile LoadFile(string path) => DescriptionJson.ReadFile<HardwareProfile>(path).Validated(path);

    public static HardwareProfile Parse(string json, string source) => DescriptionJson.Parse<HardwareProfile>(json, source).Validated(source);
}

using System.Text.Json;
using AiOs.Planner.Descriptions;

namespace AiOs.Planner.Models;

/// <summary>Loads models by bundled name, by path to a <c>models/*.json</c> file, or by path to a Hugging Face <c>config.json</c>.</summary>
public sealed class ModelCatalog
{
    private readonly Catalog _catalog;

    public ModelCatalog(Catalog catalog) => _catalog = catalog;

    public static ModelCatalog Default { get; } = new(Catalog.Default("models"));

    public IReadOnlyList<string> Names() => _catalog.Names();

    /// <summary>Loads and validates a model; every error names the file and the field.</summary>
    public ModelSpec Load(string nameOrPath)
    {
        string path = _catalog.Resolve(nameOrPath);
        return LoadFile(path);
    }

    /// <summary>Loads one file of either format.</summary>
    public static ModelSpec LoadFile(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DescriptionException($"Cannot read {path}: {e.Message}", e) { File = path };
        }
        return Parse(text, path);
    }

    /// <summary>Parses model JSON; <paramref name="source"/> names it in errors and, for Hugging Face configs, names the model.</summary>
    public static ModelSpec Parse(string json, string source)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new DescriptionException($"{source}, line {(e.LineNumber ?? 0) + 1}: not valid JSON ({e.Message.Split(" LineNumber:")[0]})", e) { File = source };
        }
        using (doc)
        {
            if (HuggingFaceConfig.Looks(doc.RootElement))
            {
                string name = Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(source))) is { Length: > 0 } dir && Path.GetFileName(source) == "config.json"
                    ? dir
                    : Path.GetFileNameWithoutExtension(source);
                return HuggingFaceConfig.Convert(doc.RootElement, source, name);
            }
        }
        return DescriptionJson.Parse<ModelSpec>(json, source).Validated(source);
    }
}

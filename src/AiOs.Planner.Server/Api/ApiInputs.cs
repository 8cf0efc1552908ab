using System.Text.Json;
using System.Text.Json.Nodes;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Server.Api;

/// <summary>
/// Reads the parts of a request body every planning endpoint shares. A model or profile is a bundled name or an
/// uploaded description (the JSON object itself), validated exactly as a file on disk; never a path, so the browser
/// cannot make the server read a file. Settings are a settings file's content (<c>aios plan --settings FILE</c>).
/// </summary>
internal static class ApiInputs
{
    /// <summary>The name an uploaded description is known by in messages.</summary>
    private const string UploadedModel = "uploaded-model.json", UploadedProfile = "uploaded-profile.json";

    /// <summary>Parses a request body as one JSON object; a clear error otherwise.</summary>
    public static JsonObject Body(string text)
    {
        try
        {
            return JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }) as JsonObject
                ?? throw new DescriptionException("The request body must be one JSON object, e.g. {\"model\": \"gpt2-xl\", \"hardware\": \"h200-1x\"}.");
        }
        catch (JsonException e)
        {
            throw new DescriptionException($"The request body is not valid JSON: {e.Message.Split(" LineNumber:")[0]}");
        }
    }

    /// <summary>The model of <c>body[field]</c>: a bundled name, or an uploaded models/*.json or Hugging Face config.json object.</summary>
    public static ModelSpec Model(JsonObject body, string field = "model") => body[field] switch
    {
        JsonObject upload => ModelCatalog.Parse(upload.ToJsonString(), UploadName(body, "model_name", UploadedModel)),
        JsonValue v when v.TryGetValue(out string? name) => ModelCatalog.Default.Load(Bundled(name, ModelCatalog.Default.Names(), "model", field)),
        _ => throw Missing(field, "a bundled model name (GET /api/models) or an uploaded config.json object"),
    };

    /// <summary>The hardware profile of <c>body[field]</c>: a bundled name, or an uploaded profile object.</summary>
    public static HardwareProfile Hardware(JsonObject body, string field = "hardware") => body[field] switch
    {
        JsonObject upload => ProfileCatalog.Parse(upload.ToJsonString(), UploadedProfile),
        JsonValue v when v.TryGetValue(out string? name) => ProfileCatalog.Default.Load(Bundled(name, ProfileCatalog.Default.Names(), "profile", field)),
        _ => throw Missing(field, "a bundled profile name (GET /api/profiles) or an uploaded profile object"),
    };

    /// <summary>The settings object of the body as a settings file holds it, or null when the body has none.</summary>
    public static TrainingSettings? Settings(JsonObject body) => body["settings"] switch
    {
        null => null,
        JsonObject o => DescriptionJson.Parse<TrainingSettings>(o.ToJsonString(), SettingsSource),
        _ => throw new DescriptionException("\"settings\" must be an object, as in a settings file (aios tune --out writes one)."),
    };

    /// <summary>How the settings of a request are named in messages (the CLI names the --settings file).</summary>
    public const string SettingsSource = "settings";

    /// <summary><c>body[field]</c> as <typeparamref name="T"/>, or <paramref name="fallback"/> when absent; a wrong type names the field.</summary>
    public static T Value<T>(JsonObject body, string field, T fallback)
    {
        if (body[field] is not { } node) return fallback;
        try
        {
            return node.Deserialize<T>(DescriptionJson.Options) ?? fallback;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new DescriptionException($"\"{field}\" has the wrong type ({node.ToJsonString()}): expected {typeof(T).Name.ToLowerInvariant()}.");
        }
    }

    /// <summary>A name the catalog lists; anything else (a path, an unknown name) is refused with the names that exist.</summary>
    private static string Bundled(string? name, IReadOnlyList<string> names, string kind, string field)
    {
        if (name is not null && names.Contains(name, StringComparer.Ordinal)) return name;
        throw new DescriptionException($"Unknown {kind} '{name}' in \"{field}\". Available {kind}s: {string.Join(", ", names)}. Upload a JSON file to use your own (paths are not accepted).");
    }

    private static string UploadName(JsonObject body, string field, string fallback)
    {
        string? name = body[field] is JsonValue v && v.TryGetValue(out string? s) ? s : null;
        if (name is null) return fallback;
        // The name only labels the upload in messages and the plan; keep it a plain file name.
        string clean = new(name.Where(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.').Take(64).ToArray());
        clean = clean.TrimStart('.');
        return clean.Length == 0 ? fallback : clean.EndsWith(".json", StringComparison.Ordinal) ? clean : clean + ".json";
    }

    private static DescriptionException Missing(string field, string what) => new($"\"{field}\" is missing or not a string or object: give {what}.");
}

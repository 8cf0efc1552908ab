using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;

namespace AiOs.Planner.Core.Tests;

/// <summary>The literature figures of issue 14 (Data/anchors/literature.json, each with its source).</summary>
internal static class LiteratureAnchors
{
    /// <summary>One section of the anchors file.</summary>
    public static JsonNode Section(string name, [CallerFilePath] string here = "") =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(Path.GetDirectoryName(here)!, "Data", "anchors", "literature.json")))![name]!;

    public static double Number(this JsonNode node, string key) => node[key]!.GetValue<double>();

    public static int Int(this JsonNode node, string key) => node[key]!.GetValue<int>();

    public static string Text(this JsonNode node, string key) => node[key]!.GetValue<string>();
}

using AiOs.Planner.Records;
using System.Text.Json.Nodes;
using System.Xml.Linq;
using AiOs.Planner.Tuning;
using AiOs.Planner.Units;

namespace AiOs.Planner.Reports.Tests;

/// <summary>
/// Every text a user controls (run id, model name, dataset path, file paths, warnings, error, profile name, settings
/// strings, resource and operation names in traces, tiers, bottleneck, what-if machine and model names) reaches the
/// pages and figures escaped: markup in it never becomes markup in the output.
/// </summary>
public sealed class ReportEscapingTests
{
    private const string Payload = "<script>alert(1)</script>\"'&";

    /// <summary>The payload with the one character a folder name cannot hold made harmless (the run id is a folder name).</summary>
    private const string FolderPayload = "run-<script>alert(1)<\\script>\"'&";

    [Fact]
    public void Given_MarkupInEveryUserText_When_TheRunIsReported_Then_NoPageOrFigureCarriesRawMarkup()
    {
        string run = InjectedRun();
        string outDir = Path.Combine(Path.GetDirectoryName(run)!, "report-out");

        string index = HtmlReport.Write(RecordedRun.Load(run), outDir);

        string html = File.ReadAllText(index);
        AssertNoRawMarkup(index, html);
        // The texts were shown (escaped), not dropped.
        Assert.Contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;", html);
        Assert.Contains("run-&lt;script&gt;", html);
        foreach (string svg in Directory.GetFiles(outDir, "*.svg"))
        {
            string text = File.ReadAllText(svg);
            AssertNoRawMarkup(svg, text);
            XDocument.Parse(text); // well-formed: an unescaped & or < would break it
        }
        string measured = File.ReadAllText(Path.Combine(outDir, "timeline-measured.svg"));
        Assert.Contains(Payload, XDocument.Parse(measured).Root!.Value);
    }

    [Fact]
    public void Given_MarkupInMachineModelAndVariantNames_When_WhatIfFiguresAreWritten_Then_TheSvgsCarryNoRawMarkup()
    {
        string outDir = Directory.CreateTempSubdirectory("aios-whatif-").FullName;
        WhatIfCell Cell(string model, string hardware, string variant, double rate) =>
            new(model, 124_000_000, hardware, variant, true, rate, Payload, Payload, Bytes.FromGiB(1), Bytes.FromGiB(2));
        var result = new WhatIfResult(
        [
            Cell(Payload, "box " + Payload, WhatIf.AsIs, 1000), Cell("gpt2", "box " + Payload, WhatIf.AsIs, 2000),
            Cell(Payload, "box " + Payload, "+ " + Payload, 3000), Cell("gpt2", "box " + Payload, "+ " + Payload, 2500),
        ], new Dictionary<string, string?> { ["box " + Payload] = Payload });

        var written = WhatIfFigures.Write(result, outDir);

        Assert.Equal(2, written.Count);
        foreach (string svg in Directory.GetFiles(outDir, "*.svg"))
        {
            string text = File.ReadAllText(svg);
            AssertNoRawMarkup(svg, text);
            Assert.Contains(Payload, XDocument.Parse(text).Root!.Value);
        }
    }

    private static void AssertNoRawMarkup(string file, string text)
    {
        Assert.False(text.Contains("<script", StringComparison.OrdinalIgnoreCase), $"{file} carries a raw <script> tag.");
        Assert.False(text.Contains("\"'&", StringComparison.Ordinal), $"{file} carries the raw quote-apostrophe-ampersand sequence.");
    }

    /// <summary>A synthetic run whose every user-controlled text is the payload.</summary>
    private static string InjectedRun()
    {
        string made = SyntheticRun.Create();
        string root = Directory.CreateTempSubdirectory("aios-xss-").FullName;
        string run = Path.Combine(root, FolderPayload);
        Directory.Move(made, run);
        Edit(Path.Combine(run, "settings.json"), o =>
        {
            o["run_id"] = FolderPayload;
            o["dataset"] = Payload;
            o["model"]!["name"] = Payload;
            o["settings"]!["nvme_path"] = Payload;
        });
        File.WriteAllText(Path.Combine(run, "summary.json"), new JsonObject
        {
            ["run_id"] = FolderPayload, ["model"] = Payload, ["dataset"] = "/data/" + Payload, ["executor"] = Payload,
            ["error"] = Payload, ["last_checkpoint"] = Payload, ["warnings"] = new JsonArray(Payload, "second " + Payload),
        }.ToJsonString());
        Edit(Path.Combine(run, "prediction.json"), o => o["step"]!["bottleneck"] = Payload);
        Edit(Path.Combine(run, "profile.json"), o => o["name"] = Payload);
        Lines(Path.Combine(run, "trace.jsonl"), o => { o["resource"] = Payload; o["operation"] = "op " + Payload; });
        Lines(Path.Combine(run, "predicted-timeline.jsonl"), o =>
        {
            if (o["tier"] is not null) o["tier"] = Payload;
            else o["operation"] = Payload;
        });
        // A torn last line: its warning (which names the file, so the folder's payload too) is shown in the page.
        File.AppendAllText(Path.Combine(run, "metrics.jsonl"), "{\"step\": 9, \"wall_");
        return run;
    }

    private static void Edit(string path, Action<JsonObject> change)
    {
        var o = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        change(o);
        File.WriteAllText(path, o.ToJsonString());
    }

    private static void Lines(string path, Action<JsonObject> change) =>
        File.WriteAllLines(path, File.ReadAllLines(path).Select(l =>
        {
            var o = JsonNode.Parse(l)!.AsObject();
            change(o);
            return o.ToJsonString();
        }));
}

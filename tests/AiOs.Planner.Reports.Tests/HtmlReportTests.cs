using AiOs.Planner.Records;
using System.Xml.Linq;
using AiOs.Planner.Descriptions;

namespace AiOs.Planner.Reports.Tests;

public class HtmlReportTests
{
    [Fact]
    public void Given_a_run_with_a_prediction_When_reported_Then_every_figure_is_written_and_embedded()
    {
        string run = SyntheticRun.Create();
        string outDir = Path.Combine(run, "report");
        string index = HtmlReport.Write(RecordedRun.Load(run), outDir);
        string html = File.ReadAllText(index);
        foreach (string name in new[] { "step-times", "phases", "timeline-predicted", "timeline-measured", "memory", "nvme", "tiers", "operations" })
        {
            var png = new FileInfo(Path.Combine(outDir, name + ".png"));
            Assert.True(png.Exists && png.Length > 5_000, $"{name}.png");
            var svg = XDocument.Load(Path.Combine(outDir, name + ".svg"));
            Assert.Equal("svg", svg.Root!.Name.LocalName);
        }
        Assert.Equal(8, CountOf(html, "<figure>"));
        Assert.Contains("Predicted vs measured", html);
        Assert.Contains("step time", html);
        // The comparison per tier and per operation is drawn and tabled: the host tier (planned peak vs resident set) and the
        // measured trace's operations, each with its error.
        Assert.Contains("<h3>Memory per tier</h3>", html);
        Assert.Contains("<td>host</td>", html);
        Assert.Contains("<h3>Per operation kind and resource", html);
        Assert.Contains(">param_read<", html);
        Assert.Contains("host", File.ReadAllText(Path.Combine(outDir, "tiers.svg")));
    }

    [Fact]
    public void Given_measurements_ten_percent_slower_When_compared_Then_the_errors_say_so()
    {
        var rows = RunComparison.Phases(RecordedRun.Load(SyntheticRun.Create()));
        var step = Assert.Single(rows, r => r.Quantity == "step time");
        Assert.Equal(1 / 1.1 - 1, step.Error!.Value, 3);
    }

    [Fact]
    public void Given_a_run_without_a_prediction_When_reported_Then_it_says_there_is_nothing_to_compare()
    {
        string run = SyntheticRun.Create(withPrediction: false);
        string html = File.ReadAllText(HtmlReport.Write(RecordedRun.Load(run), Path.Combine(run, "report")));
        Assert.Contains("no prediction stored", html);
        Assert.Contains("nothing to compare", html);
    }

    [Fact]
    public void Given_a_folder_that_is_not_a_run_When_loaded_Then_the_error_says_what_to_give()
    {
        var e = Assert.Throws<DescriptionException>(() => RecordedRun.Load(Directory.CreateTempSubdirectory().FullName));
        Assert.Contains("metrics.jsonl", e.Message);
    }

    private static int CountOf(string text, string what) => (text.Length - text.Replace(what, "", StringComparison.Ordinal).Length) / what.Length;
}

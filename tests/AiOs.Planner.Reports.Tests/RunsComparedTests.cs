using System.Text.Json.Nodes;
using System.Xml.Linq;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Records;

namespace AiOs.Planner.Reports.Tests;

public sealed class RunsComparedTests
{
    /// <summary>
    /// A synthetic run (<see cref="SyntheticRun"/>) with the given losses per step (steps 1…n), run id, optimizer state, seed
    /// and model name written into its settings.json, and fixed bytes per step.
    /// </summary>
    private static string Run(IReadOnlyList<double> losses, string id, string state = "fp32", long? seed = 42, string? model = null, long nvmeBytesPerStep = 1000, string learningRate = "1e-4")
    {
        string dir = SyntheticRun.Create();
        string metrics = Path.Combine(dir, RecordedRun.MetricsFile);
        var template = JsonNode.Parse(File.ReadAllLines(metrics)[1])!.AsObject();
        File.WriteAllLines(metrics, losses.Select((loss, i) =>
        {
            var o = template.DeepClone().AsObject();
            o["step"] = i + 1;
            o["loss"] = loss;
            o["wall_ms"] = 100.0 + i;
            o["nvme_read_bytes"] = nvmeBytesPerStep;
            o["nvme_written_bytes"] = nvmeBytesPerStep;
            o["cpu_read_bytes"] = 0;
            o["cpu_written_bytes"] = 0;
            return o.ToJsonString();
        }));
        string settingsPath = Path.Combine(dir, RecordedRun.SettingsFile);
        var settings = JsonNode.Parse(File.ReadAllText(settingsPath))!.AsObject();
        settings["run_id"] = id;
        settings["settings"]!["optimizer_state"] = state;
        settings["engine"] = new JsonObject { ["run_id"] = id, ["adam"] = new JsonObject { ["learning_rate"] = JsonNode.Parse(learningRate) } };
        if (seed is { } s) settings["engine"]!["seed"] = s;
        if (model is not null) settings["model"]!["name"] = model;
        File.WriteAllText(settingsPath, settings.ToJsonString());
        return dir;
    }

    /// <summary>30 steps at 5.0, then 50 at <paramref name="tail"/>: the mean of the last 50 is the tail, the mean of all is not.</summary>
    private static double[] Losses(double tail) => [.. Enumerable.Repeat(5.0, 30), .. Enumerable.Repeat(tail, 50)];

    private static RunsCompared Compare(string first, params string[] others) =>
        RunsCompared.Of(RunsCompared.Load(first, "RUN_DIR"), others.Select(o => RunsCompared.Load(o)).ToList());

    [Fact]
    public void Given_an_fp32_and_an_8bit_run_When_reported_with_compare_Then_the_section_figure_and_both_runs_are_there()
    {
        // Given two runs from one seed that differ only in the optimizer state
        string a = Run(Losses(2.0), "a"), b = Run(Losses(2.02), "b", state: "8bit");
        string outDir = Path.Combine(a, "report");

        // When the report of a is written with b compared
        string html = File.ReadAllText(HtmlReport.Write(RecordedRun.Load(a), outDir, Compare(a, b)));

        // Then the section, the figure (PNG and SVG, legend naming each run by id and state) and a row per run are there
        Assert.Contains("<h2>Runs compared</h2>", html);
        Assert.Contains("Settings that differ: optimizer_state.", html);
        var png = new FileInfo(Path.Combine(outDir, RunsComparedSection.FigureName + ".png"));
        Assert.True(png.Exists && png.Length > 5_000);
        string svg = XDocument.Load(Path.Combine(outDir, RunsComparedSection.FigureName + ".svg")).ToString();
        Assert.Contains("a (optimizer_state: fp32)", svg);
        Assert.Contains("b (optimizer_state: 8bit)", svg);
        // and the difference of b's loss from a's per step, where the two curves lie nearly on one another
        Assert.True(new FileInfo(Path.Combine(outDir, RunsComparedSection.FigureName + "-difference.png")).Length > 5_000);
        Assert.Contains("Loss against a", XDocument.Load(Path.Combine(outDir, RunsComparedSection.FigureName + "-difference.svg")).ToString());
        Assert.Contains("<td>a</td>", html);
        Assert.Contains("<td>b</td>", html);
        Assert.Contains("<td>8bit</td>", html);
        Assert.Contains("(reference)", html);
        Assert.DoesNotContain("Warning:", html);
    }

    [Fact]
    public void Given_synthetic_losses_When_compared_Then_the_mean_of_the_last_50_steps_and_its_difference_are_right()
    {
        // Given the last 50 losses at 2.0 and at 2.03 (the first 30 at 5.0, which a mean of every step would include)
        var c = Compare(Run(Losses(2.0), "a"), Run(Losses(2.03), "b", state: "8bit"));

        // Then the means are the tails', and b is 1.5% above a
        Assert.Equal(50, c.Runs[1].MeanOver);
        Assert.Equal(2.03, c.Runs[1].MeanLoss, 9);
        Assert.Null(c.Runs[0].MeanLossChange);
        Assert.Equal(0.015, c.Runs[1].MeanLossChange!.Value, 9);
        Assert.Equal("+1.50%", RunsComparedSection.Percent(c.Runs[1].MeanLossChange!.Value));
        Assert.Equal(2000, c.Runs[1].MedianNvmeBytes);
        Assert.Null(c.Runs[1].MedianCpuStateBytes);
        Assert.Contains("<td>the last 50 steps</td>", RunsComparedSection.Html(c));
    }

    [Theory]
    [InlineData(-0.00001, "0.00%")]
    [InlineData(0.00001, "0.00%")]
    [InlineData(-0.0123, "-1.23%")]
    public void Given_a_loss_change_When_shown_Then_it_has_two_decimals_and_no_sign_when_it_rounds_to_zero(double change, string shown) =>
        Assert.Equal(shown, RunsComparedSection.Percent(change));

    [Fact]
    public void Given_a_run_shorter_than_the_window_When_compared_Then_the_mean_is_over_all_its_steps_and_says_so()
    {
        var c = Compare(Run([4.0, 3.0, 2.0], "a"), Run([4.0, 3.0, 1.0, 1.0], "b"));
        Assert.Equal(3, c.Runs[0].MeanOver);
        Assert.Equal(3.0, c.Runs[0].MeanLoss, 9);
        Assert.Equal(2.25 / 3.0 - 1, c.Runs[1].MeanLossChange!.Value, 9);
        Assert.Equal(1.0, c.Runs[1].LastLoss, 9);
        Assert.Contains("<td>all 4 steps (fewer than 50)</td>", RunsComparedSection.Html(c));
    }

    [Fact]
    public void Given_runs_from_different_seeds_When_compared_Then_the_section_warns()
    {
        var c = Compare(Run(Losses(2.0), "a", seed: 1), Run(Losses(2.0), "b", seed: 2));
        Assert.Contains("different seeds", Assert.Single(c.Warnings));
        Assert.Contains("Warning:", RunsComparedSection.Html(c));
        Assert.Equal(["seed"], c.Runs[0].Differing.Select(d => d.Key));
    }

    [Fact]
    public void Given_a_number_written_two_ways_and_a_nested_difference_When_compared_Then_only_real_differences_count_top_level_first()
    {
        // Given one learning rate as 1e-4 and 1.0E-4 (not a difference) and then 3e-4 with another seed (two differences)
        var same = Compare(Run(Losses(2.0), "a", learningRate: "1e-4"), Run(Losses(2.0), "b", state: "8bit", learningRate: "1.0E-4"));
        Assert.Equal(["optimizer_state"], same.Runs[1].Differing.Select(d => d.Key));
        var other = Compare(Run(Losses(2.0), "a", learningRate: "1e-4"), Run(Losses(2.0), "c", seed: 7, learningRate: "3e-4"));
        // Then the top-level seed comes before the nested learning rate, in the table and the legend
        Assert.Equal(["seed", "adam.learning_rate"], other.Runs[1].Differing.Select(d => d.Key));
        Assert.Equal("c (seed: 7, adam.learning_rate: 0.0003)", other.Runs[1].Label());
    }

    [Fact]
    public void Given_runs_of_different_models_When_compared_Then_it_is_allowed_and_the_table_says_so()
    {
        var c = Compare(Run(Losses(2.0), "a"), Run(Losses(2.5), "b", model: "tiny-gpt"));
        Assert.Contains("different models (gpt2, tiny-gpt)", Assert.Single(c.Notes));
        Assert.Empty(c.Warnings);
        Assert.Contains("<th>model (differs)</th>", RunsComparedSection.Html(c));
        Assert.Equal(0.25, c.Runs[1].MeanLossChange!.Value, 9);
    }

    [Fact]
    public void Given_a_folder_without_metrics_or_settings_When_compared_Then_the_error_names_the_folder_and_both_files()
    {
        string empty = Directory.CreateTempSubdirectory("aios-notrun-").FullName;
        var e = Assert.Throws<DescriptionException>(() => RunsCompared.Load(empty));
        Assert.Contains(empty, e.Message);
        Assert.Contains("--compare", e.Message);
        Assert.Contains("no metrics.jsonl and no settings.json", e.Message);
    }

    [Fact]
    public void Given_a_run_folder_without_settings_When_compared_Then_the_error_names_settings_json_only()
    {
        string dir = Run(Losses(2.0), "a");
        File.Delete(Path.Combine(dir, RecordedRun.SettingsFile));
        var e = Assert.Throws<DescriptionException>(() => RunsCompared.Load(dir));
        Assert.Contains("has no settings.json (", e.Message);
        Assert.DoesNotContain("metrics.jsonl and", e.Message);
    }

    [Fact]
    public void Given_the_same_folder_twice_When_compared_Then_it_is_compared_once_with_a_warning()
    {
        string a = Run(Losses(2.0), "a");
        var c = Compare(a, a);
        Assert.Single(c.Runs);
        Assert.Contains("more than once", Assert.Single(c.Warnings));
    }
}

using AiOs.Planner.Records;
using System.Text.Json.Nodes;

namespace AiOs.Planner.Reports.Tests;

public sealed class RunComparisonTests
{
    /// <summary>Rewrites the synthetic run's metrics: wall time and tokens per step, and optionally a null loss.</summary>
    private static string RunWith(IReadOnlyList<(double WallMs, long Tokens, bool NullLoss)> steps)
    {
        string dir = SyntheticRun.Create();
        string metrics = Path.Combine(dir, "metrics.jsonl");
        var template = JsonNode.Parse(File.ReadAllLines(metrics)[1])!.AsObject();
        var lines = steps.Select((s, i) =>
        {
            var o = template.DeepClone().AsObject();
            o["step"] = i + 1;
            o["wall_ms"] = s.WallMs;
            o["tokens"] = s.Tokens;
            o["tokens_per_second"] = s.Tokens / (s.WallMs / 1e3);
            if (s.NullLoss) o["loss"] = null;
            return o.ToJsonString();
        });
        File.WriteAllLines(metrics, lines);
        return dir;
    }

    [Fact]
    public void Given_a_run_with_one_fast_step_When_reported_Then_the_headline_throughput_is_total_tokens_over_total_time()
    {
        // Given steps of 1,000 tokens: warm-up, 0.1 s, 10 s, 10 s (the mean of per-step rates would be 3,400 tokens/s)
        string dir = RunWith([(20_000, 1000, false), (100, 1000, false), (10_000, 1000, false), (10_000, 1000, false)]);
        var run = RecordedRun.Load(dir);
        // When the report is written
        string html = File.ReadAllText(HtmlReport.Write(run, Path.Combine(dir, "report")));
        // Then it shows 3,000 ÷ 20.1 s = 149 tokens/s
        Assert.Equal(3000 / 20.1, run.TokensPerSecond, 6);
        Assert.Contains("(149 tokens/s)", html);
    }

    [Fact]
    public void Given_a_null_loss_When_loaded_Then_the_step_is_not_finite_and_stays_out_of_the_means()
    {
        // Given a last step whose loss the engine wrote as null (not finite), and that took 1 ms
        string dir = RunWith([(100, 10, false), (10, 10, false), (10, 10, false), (1, 10, true)]);
        var run = RecordedRun.Load(dir);
        // Then its loss is NaN, not 0, and the means and the throughput come from the two sound steps
        Assert.True(double.IsNaN(run.Steps[^1].Loss));
        Assert.False(run.Steps[^1].Finite);
        Assert.Equal(2, run.SteadySteps.Count);
        Assert.Equal(0.010, Assert.Single(RunComparison.Phases(run), r => r.Quantity == "step time").Measured, 9);
        Assert.Equal(1000, run.TokensPerSecond, 6);
        string html = File.ReadAllText(HtmlReport.Write(run, Path.Combine(dir, "report")));
        Assert.Contains("step 4 was not finite", html);
    }

    [Fact]
    public void Given_steps_varying_tenfold_When_compared_Then_the_table_is_marked_unreliable_with_the_spread()
    {
        string dir = RunWith([(500, 10, false), (10, 10, false), (100, 10, false), (1000, 10, false)]);
        var comparison = RunComparison.Of(RecordedRun.Load(dir));
        Assert.True(comparison.Unreliable);
        Assert.Contains("unreliable", comparison.Warning);
        Assert.Contains("max 1000", comparison.SpreadLine);
        string html = File.ReadAllText(HtmlReport.Write(RecordedRun.Load(dir), Path.Combine(dir, "report")));
        Assert.Contains("<strong>Unreliable:</strong>", html);
    }

    [Fact]
    public void Given_a_summary_with_a_load_above_the_cores_When_compared_Then_it_is_unreliable_though_the_steps_agree()
    {
        string dir = RunWith([(500, 10, false), (10, 10, false), (10, 10, false), (10, 10, false)]);
        File.WriteAllText(Path.Combine(dir, "summary.json"), """{"load_average_start": 5.2, "load_average_end": 4.0, "logical_cores": 2}""");
        var comparison = RunComparison.Of(RecordedRun.Load(dir));
        Assert.Contains("load average was 5.20 on 2 cores", Assert.Single(comparison.Caveats));
    }

    [Fact]
    public void Given_a_summary_with_cpu_times_When_compared_Then_other_processes_cores_decide_and_not_the_load()
    {
        string dir = RunWith([(500, 10, false), (10, 10, false), (10, 10, false), (10, 10, false)]);
        // The run alone loaded 16 cores to 45.6 (its own 15 cores of CPU Adam and I/O threads); other work was 0.4 core.
        File.WriteAllText(Path.Combine(dir, "summary.json"), """
            {"load_average_start": 12.07, "load_average_end": 45.6, "logical_cores": 16,
             "cpu_use": {"wall_seconds": 100, "machine_busy_seconds": 1540, "own_seconds": 1500, "own_cores": 15, "other_cores": 0.4}}
            """);
        Assert.False(RunComparison.Of(RecordedRun.Load(dir)).Unreliable);
        // Another job on 3 cores is named, though the load averages stayed under the cores.
        File.WriteAllText(Path.Combine(dir, "summary.json"), """
            {"load_average_start": 4, "load_average_end": 5, "logical_cores": 16,
             "cpu_use": {"wall_seconds": 100, "machine_busy_seconds": 500, "own_seconds": 200}}
            """);
        Assert.Contains("other processes kept 3.0 cores busy", Assert.Single(RunComparison.Of(RecordedRun.Load(dir)).Caveats));
    }

    [Fact]
    public void Given_steady_steps_on_a_quiet_machine_When_compared_Then_there_is_no_warning()
    {
        string dir = RunWith([(500, 10, false), (10, 10, false), (11, 10, false), (12, 10, false)]);
        File.WriteAllText(Path.Combine(dir, "summary.json"), """{"load_average_start": 0.4, "load_average_end": 0.6, "logical_cores": 2}""");
        var comparison = RunComparison.Of(RecordedRun.Load(dir));
        Assert.False(comparison.Unreliable);
        Assert.Null(comparison.Warning);
        string html = File.ReadAllText(HtmlReport.Write(RecordedRun.Load(dir), Path.Combine(dir, "report")));
        Assert.DoesNotContain("Unreliable:", html);
    }

    [Fact]
    public void Given_a_folder_without_metrics_in_a_history_When_loaded_Then_it_is_listed_with_its_reason()
    {
        string root = Directory.CreateTempSubdirectory("aios-history-").FullName;
        Directory.CreateDirectory(Path.Combine(root, "empty-run"));
        var (runs, skipped) = RunHistory.Load(root);
        Assert.Empty(runs);
        Assert.Contains("empty-run: no metrics.jsonl", Assert.Single(skipped));
    }
}

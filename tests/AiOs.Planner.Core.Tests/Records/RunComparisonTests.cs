using System.Text.Json.Nodes;
using AiOs.Planner.Records;

namespace AiOs.Planner.Core.Tests.Records;

/// <summary>Core's comparison of a run record: per phase, per memory tier, per operation kind and resource.</summary>
public sealed class RunComparisonTests
{
    private static JsonObject[] Lines(string path) => File.ReadAllLines(path).Select(l => JsonNode.Parse(l)!.AsObject()).ToArray();

    [Fact]
    public void Given_a_run_When_compared_per_operation_Then_predicted_is_the_predicted_steps_sum_and_measured_the_mean_of_the_steps_after_the_first()
    {
        string dir = RecordedRunTests.LegacyRun();
        var predicted = Lines(Path.Combine(dir, "predicted-timeline.jsonl")).Where(o => (string?)o["type"] == "span").ToArray();
        var trace = Lines(Path.Combine(dir, "trace.jsonl"));
        double Ms(IEnumerable<JsonObject> spans) => spans.Sum(o => (long)o["end_ns"]! - (long)o["start_ns"]!) / 1e6;
        bool Backward(JsonObject o) => (string?)o["operation"] == "backward" && (string?)o["resource"] == "cpu_compute";

        var row = Assert.Single(RunComparison.Of(RecordedRun.Load(dir)).Operations, r => r.Operation == "backward" && r.Resource == "cpu_compute");

        Assert.Equal(Ms(predicted.Where(Backward)), row.PredictedMs, 9);
        Assert.Equal(Ms(trace.Where(o => Backward(o) && (int)o["step"]! > 1)) / 7, row.MeasuredMs!.Value, 9);
        Assert.NotEqual(Ms(trace.Where(Backward)) / 8, row.MeasuredMs!.Value, 3);
        Assert.Equal(predicted.Count(Backward), row.PredictedSpans);
    }

    [Fact]
    public void Given_a_run_When_compared_per_tier_Then_host_memory_is_the_planned_peak_against_the_highest_resident_set()
    {
        string dir = RecordedRunTests.LegacyRun();
        var prediction = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "prediction.json")))!;
        long rss = Lines(Path.Combine(dir, "metrics.jsonl")).Max(o => (long)o["peak_resident_bytes"]!);

        var tiers = RunComparison.Of(RecordedRun.Load(dir)).Tiers;

        var host = Assert.Single(tiers, t => t.Tier == "host");
        Assert.Equal((long)prediction["memory"]!["cpu_peak_bytes"]!, host.PredictedBytes);
        Assert.Equal(rss, host.MeasuredBytes);
        Assert.Equal((host.PredictedBytes - (double)rss) / rss, host.Error!.Value, 12);
        // A CPU run: no device tier predicted or measured, so none is shown.
        Assert.DoesNotContain(tiers, t => t.Tier == "device");
    }

    [Fact]
    public void Given_steps_measuring_pinned_and_swap_bytes_When_compared_Then_those_tiers_take_the_highest_step()
    {
        string dir = RecordedRunTests.LegacyRun();
        string path = Path.Combine(dir, "metrics.jsonl");
        var lines = Lines(path);
        for (int i = 0; i < lines.Length; i++)
        {
            lines[i]["pinned_bytes"] = 1000 + i;
            lines[i]["nvme_swap_bytes"] = 5000 - i;
        }
        File.WriteAllLines(path, lines.Select(o => o.ToJsonString()));

        var tiers = RunComparison.Of(RecordedRun.Load(dir)).Tiers;

        Assert.Equal(1007, Assert.Single(tiers, t => t.Tier == "pinned").MeasuredBytes);
        Assert.Equal(5000, Assert.Single(tiers, t => t.Tier == "nvme").MeasuredBytes);
    }

    [Fact]
    public void Given_a_run_When_compared_per_phase_Then_the_rows_are_the_prediction_against_the_steady_means()
    {
        string dir = RecordedRunTests.LegacyRun();
        var run = RecordedRun.Load(dir);

        var rows = RunComparison.Of(run).Rows;

        Assert.Equal(["step time", "forward", "backward", "optimizer"], rows.Select(r => r.Quantity));
        Assert.Equal(run.Prediction!.Step!.Phases.BackwardS, rows[2].Predicted);
        Assert.Equal(run.Steps.Skip(1).Average(s => s.BackwardMs) / 1e3, rows[2].Measured, 12);
    }
}

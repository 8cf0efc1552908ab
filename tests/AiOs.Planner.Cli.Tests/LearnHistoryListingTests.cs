using System.Text.Json;
using System.Text.Json.Nodes;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Cli.Tests;

public sealed class LearnHistoryListingTests
{
    /// <summary>A history in which no run is usable: one without a prediction, one of one step, one disturbed, one not a run, in a folder the caller disposes.</summary>
    private static TempDir UnusableHistory()
    {
        var tmp = new TempDir("aios-learn-none-");
        string root = tmp.Path;
        var model = ModelCatalog.Default.Load("tiny-gpt");
        var profile = ProfileCatalog.Default.Load("ci-2core-24gb");
        string Metrics(params double[] walls) => string.Join("\n", walls.Select((w, i) => JsonSerializer.Serialize(new { step = i + 1, wall_ms = w, forward_ms = w / 3, backward_ms = w / 2, optimizer_ms = w / 6 })));
        Directory.CreateDirectory(Path.Combine(root, "a-unpredicted"));
        File.WriteAllText(Path.Combine(root, "a-unpredicted", "metrics.jsonl"), Metrics(10, 10, 10));
        RunPrediction.Write(Path.Combine(root, "b-one-step"), model, profile, new TrainingSettings { SeqLen = 32, MicroBatch = 1 });
        File.WriteAllText(Path.Combine(root, "b-one-step", "metrics.jsonl"), Metrics(10));
        RunPrediction.Write(Path.Combine(root, "c-busy"), model, profile, new TrainingSettings { SeqLen = 32, MicroBatch = 1 });
        File.WriteAllText(Path.Combine(root, "c-busy", "metrics.jsonl"), Metrics(50, 10, 100, 1000));
        Directory.CreateDirectory(Path.Combine(root, "d-not-a-run"));
        return tmp;
    }

    [Fact]
    public void Given_a_history_with_no_usable_run_When_learned_Then_each_run_is_listed_with_its_reason_and_it_refuses()
    {
        using var tmp = UnusableHistory();
        string root = tmp.Path;
        var r = CliRunner.Run("learn", "--from-runs", root, "--profile", "ci-2core-24gb", "--out", Path.Combine(root, "learned.json"));
        Assert.Equal(ExitCodes.Infeasible, r.ExitCode);
        Assert.Contains("a-unpredicted: no prediction.json", r.Console);
        Assert.Contains("b-one-step: fewer than two measured steps", r.Console);
        Assert.Contains("c-busy: its steps after the first", r.Console);
        Assert.Contains("d-not-a-run: no metrics.jsonl", r.Console);
        Assert.Contains("none of the 4 entries", r.Console);
        Assert.False(File.Exists(Path.Combine(root, "learned.json")));
    }

    [Fact]
    public void Given_a_history_with_no_usable_run_When_learned_with_json_Then_the_document_lists_the_runs_and_the_error()
    {
        using var tmp = UnusableHistory();
        string root = tmp.Path;
        var r = CliRunner.Run("learn", "--from-runs", root, "--profile", "ci-2core-24gb", "--cross-validate", "3", "--json");
        Assert.Equal(ExitCodes.Infeasible, r.ExitCode);
        var doc = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(4, doc["skipped"]!.AsArray().Count);
        Assert.Contains("none of the 4 entries", (string)doc["error"]!);
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Cli.Tests;

public sealed class LearnCommandTests
{
    /// <summary>Run folders as <c>aios train</c> leaves them, whose measured phases are 2×, 3× and 0.5× the prediction, in a folder the caller disposes.</summary>
    private static TempDir History()
    {
        var tmp = new TempDir("aios-learn-");
        string root = tmp.Path;
        var model = ModelCatalog.Default.Load("tiny-gpt");
        var profile = ProfileCatalog.Default.Load("ci-2core-24gb");
        foreach (int seq in new[] { 32, 64, 128 })
            foreach (int mb in new[] { 1, 2, 4, 8 })
            {
                string dir = Path.Combine(root, $"s{seq}-b{mb}");
                var step = RunPrediction.Write(dir, model, profile, new TrainingSettings { SeqLen = seq, MicroBatch = mb }).Step!;
                var lines = Enumerable.Range(1, 4).Select(i => JsonSerializer.Serialize(new
                {
                    step = i, forward_ms = step.Phases.Forward.Milliseconds * 2, backward_ms = step.Phases.Backward.Milliseconds * 3,
                    optimizer_ms = step.Phases.Optimizer.Milliseconds * 0.5, wall_ms = 1.0,
                }));
                File.WriteAllLines(Path.Combine(dir, "metrics.jsonl"), lines);
            }
        return tmp;
    }

    [Fact]
    public void Given_a_history_When_learned_and_planned_Then_the_plan_is_corrected_and_cross_validation_lowers_the_error()
    {
        using var tmp = History();
        string root = tmp.Path;
        string profile = Path.Combine(root, "learned.json");
        // When a correction is learned, with cross-validation
        var learn = CliRunner.Run("learn", "--from-runs", root, "--profile", "ci-2core-24gb", "--out", profile, "--cross-validate", "3", "--json");
        Assert.Equal(0, learn.ExitCode);
        var cv = JsonNode.Parse(learn.Stdout)!["cross_validation"]!;
        var step = cv["errors"]!.AsArray().Single(e => (string)e!["quantity"]! == "step")!;
        Assert.True((double)step["corrected"]! < (double)step["uncorrected"]! / 2, learn.Stdout);
        // Then planning with the written profile applies it inside the history…
        var inside = CliRunner.Run("plan", "--model", "tiny-gpt", "--hardware", profile, "--seq-len", "64", "--micro-batch", "4", "--json");
        var correction = JsonNode.Parse(inside.Stdout)!["step"]!["correction"]!;
        Assert.True((bool)correction["corrected"]!, inside.Stdout);
        Assert.InRange((double)correction["ratios"]!["backward"]!, 2.4, 3.6);
        // …and falls back, saying why, far outside it
        var outside = CliRunner.Run("plan", "--model", "tiny-gpt", "--hardware", profile, "--seq-len", "128", "--micro-batch", "64", "--json");
        var fallback = JsonNode.Parse(outside.Stdout)!["step"]!["correction"]!;
        Assert.False((bool)fallback["corrected"]!);
        Assert.Contains("micro_batch", (string)fallback["reason"]!);
    }
}

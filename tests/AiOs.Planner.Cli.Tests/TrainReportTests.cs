namespace AiOs.Planner.Cli.Tests;

public class TrainReportTests
{
    [Fact]
    public void Given_a_short_offloaded_run_with_a_profile_When_trained_and_reported_Then_prediction_and_measurement_sit_side_by_side()
    {
        using var tmp = new TempDir("aios-train-");
        string root = tmp.Path;
        var train = CliRunner.Run("train", "--model", "tiny-gpt", "--hardware", "ci-2core-24gb", "--steps", "3", "--seq-len", "32", "--micro-batch", "2",
            "--nvme-offload-path", Path.Combine(root, "nvme"), "--runs-dir", root, "--run-id", "r1");
        Assert.Equal(ExitCodes.Ok, train.ExitCode);
        string run = Path.Combine(root, "r1");
        foreach (string file in new[] { "prediction.json", "predicted-timeline.jsonl", "profile.json", "metrics.jsonl", "trace.jsonl", "summary.json" })
            Assert.True(File.Exists(Path.Combine(run, file)), file);
        Assert.Contains("Predicted (ci-2core-24gb) vs measured", train.Console);
        // Per tier from Core's comparison: the planned host peak against the resident set, with its error.
        Assert.Contains("Memory per tier: predicted peak vs measured", train.Console);
        Assert.Matches(@"host\s.*[+-]\d+\.\d%", train.Console);
        Assert.Contains("Busy time per step by operation and resource", train.Console);

        var report = CliRunner.Run("report", run);
        Assert.Equal(ExitCodes.Ok, report.ExitCode);
        string html = File.ReadAllText(Path.Combine(run, "report", "index.html"));
        Assert.Contains("Predicted vs measured", html);
        Assert.True(File.Exists(Path.Combine(run, "report", "timeline-measured.png")));
        Assert.True(File.Exists(Path.Combine(run, "report", "timeline-predicted.png")));
        Assert.True(File.Exists(Path.Combine(run, "report", "tiers.png")));
        Assert.True(File.Exists(Path.Combine(run, "report", "operations.png")));
        Assert.Contains("host memory: predicted", report.Console);

        // --hardware: the same run against a prediction made now on another profile; the run's own record stays as it was.
        string before = File.ReadAllText(Path.Combine(run, "prediction.json"));
        string other = Path.Combine(root, "other-report");
        var again = CliRunner.Run("report", run, "--hardware", "h200-1x", "--out", other);
        Assert.Equal(ExitCodes.Ok, again.ExitCode);
        Assert.Equal(before, File.ReadAllText(Path.Combine(run, "prediction.json")));
        var remade = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(other, "prediction", "prediction.json")))!;
        Assert.Equal("h200-1x", remade["hardware"]!["name"]!.GetValue<string>());
        Assert.Contains("predicted now on h200-1x", again.Console);
        string Step(string console) => System.Text.RegularExpressions.Regex.Match(console, @"step time: predicted [^,]+").Value;
        Assert.NotEqual(Step(report.Console), Step(again.Console)); // a GPU machine's prediction, not the CPU profile's
    }
}

public class AutoTuneTrainTests
{
    [Fact]
    public void Given_auto_tune_When_trained_Then_the_run_uses_and_records_the_tuners_choice()
    {
        using var tmp = new TempDir("aios-autotune-");
        string root = tmp.Path;
        var r = CliRunner.Run("train", "--model", "tiny-gpt", "--hardware", "ci-2core-24gb", "--auto-tune", "--tune-max-micro-batch", "4",
            "--steps", "2", "--seq-len", "32", "--runs-dir", root, "--run-id", "a1");
        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        Assert.Contains("Auto-tuned for ci-2core-24gb", r.Console);
        var tune = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(root, "a1", "tune.json")))!;
        int micro = tune["chosen"]!["micro_batch"]!.GetValue<int>();
        Assert.InRange(micro, 1, 4);
        var settings = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(root, "a1", "settings.json")))!;
        Assert.Equal(micro, settings["settings"]!["micro_batch"]!.GetValue<int>());
        Assert.NotEmpty(tune["explanation"]!.AsArray());
    }

    [Fact]
    public void Given_auto_tune_on_cuda_without_a_profile_When_trained_Then_it_asks_for_one()
    {
        // --seq-len within tiny-gpt's 128 positions: the shared validator would refuse the default 1024 first.
        var r = CliRunner.Run("train", "--model", "tiny-gpt", "--device", "cuda", "--auto-tune", "--steps", "1", "--seq-len", "16");
        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("--auto-tune needs --hardware", r.Console);
    }
}

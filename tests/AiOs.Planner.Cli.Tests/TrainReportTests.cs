namespace AiOs.Planner.Cli.Tests;

public class TrainReportTests
{
    [Fact]
    public void Given_a_short_offloaded_run_with_a_profile_When_trained_and_reported_Then_prediction_and_measurement_sit_side_by_side()
    {
        string root = Directory.CreateTempSubdirectory("aios-train-").FullName;
        var train = CliRunner.Run("train", "--model", "tiny-gpt", "--hardware", "ci-2core-24gb", "--steps", "3", "--seq-len", "32", "--micro-batch", "2",
            "--nvme-offload-path", Path.Combine(root, "nvme"), "--runs-dir", root, "--run-id", "r1");
        Assert.Equal(ExitCodes.Ok, train.ExitCode);
        string run = Path.Combine(root, "r1");
        foreach (string file in new[] { "prediction.json", "predicted-timeline.jsonl", "profile.json", "metrics.jsonl", "trace.jsonl", "summary.json" })
            Assert.True(File.Exists(Path.Combine(run, file)), file);
        Assert.Contains("Predicted (ci-2core-24gb) vs measured", train.Console);

        var report = CliRunner.Run("report", run);
        Assert.Equal(ExitCodes.Ok, report.ExitCode);
        string html = File.ReadAllText(Path.Combine(run, "report", "index.html"));
        Assert.Contains("Predicted vs measured", html);
        Assert.True(File.Exists(Path.Combine(run, "report", "timeline-measured.png")));
        Assert.True(File.Exists(Path.Combine(run, "report", "timeline-predicted.png")));
    }
}

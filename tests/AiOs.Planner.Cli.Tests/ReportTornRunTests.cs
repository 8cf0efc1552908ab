namespace AiOs.Planner.Cli.Tests;

/// <summary><c>aios report</c> on a run whose files a stopped run (a full disk) left cut off.</summary>
public class ReportTornRunTests
{
    [Fact]
    public void Given_a_run_whose_trace_ends_in_a_torn_line_When_reported_Then_the_report_is_written_and_names_the_skipped_line()
    {
        using var tmp = new TempDir("aios-torn-");
        string root = tmp.Path;
        var train = CliRunner.Run("train", "--model", "tiny-gpt", "--steps", "2", "--seq-len", "32", "--micro-batch", "2", "--runs-dir", root, "--run-id", "t1");
        Assert.Equal(ExitCodes.Ok, train.ExitCode);
        string run = Path.Combine(root, "t1");
        string trace = Path.Combine(run, "trace.jsonl");
        int lines = File.ReadAllLines(trace).Length;
        File.AppendAllText(trace, "{\"step\":2,\"micro_batch\":0,\"resou");

        var report = CliRunner.Run("report", run);

        Assert.Equal(ExitCodes.Ok, report.ExitCode);
        string html = File.ReadAllText(Path.Combine(run, "report", "index.html"));
        Assert.Contains($"line {lines + 1}: the last line is cut off", html);
    }

    [Fact]
    public void Given_a_run_whose_metrics_are_damaged_inside_When_reported_Then_it_fails_naming_the_file_and_line()
    {
        using var tmp = new TempDir("aios-torn-");
        string root = tmp.Path;
        var train = CliRunner.Run("train", "--model", "tiny-gpt", "--steps", "3", "--seq-len", "32", "--micro-batch", "2", "--runs-dir", root, "--run-id", "t2");
        Assert.Equal(ExitCodes.Ok, train.ExitCode);
        string metrics = Path.Combine(root, "t2", "metrics.jsonl");
        var lines = File.ReadAllLines(metrics);
        lines[1] = lines[1][..20];
        File.WriteAllLines(metrics, lines);

        var report = CliRunner.Run("report", Path.Combine(root, "t2"));

        Assert.NotEqual(ExitCodes.Ok, report.ExitCode);
        Assert.Contains("metrics.jsonl, line 2", report.Console.Replace("\n", "", StringComparison.Ordinal));
    }
}

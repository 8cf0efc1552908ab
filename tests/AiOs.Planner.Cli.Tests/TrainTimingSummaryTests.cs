using AiOs.Planner.Records;
using System.Text.Json.Nodes;
using AiOs.Planner.Reports;

namespace AiOs.Planner.Cli.Tests;

public sealed class TrainTimingSummaryTests
{
    [Fact]
    public void Given_a_short_run_When_trained_Then_the_summary_records_spread_load_and_the_reports_throughput()
    {
        using var tmp = new TempDir("aios-train-timing-");
        string root = tmp.Path;
        var train = CliRunner.Run("train", "--model", "tiny-gpt", "--hardware", "ci-2core-24gb", "--steps", "4", "--seq-len", "32", "--micro-batch", "2",
            "--runs-dir", root, "--run-id", "t1");
        Assert.Equal(ExitCodes.Ok, train.ExitCode);
        string dir = Path.Combine(root, "t1");
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "summary.json")))!;
        var run = RecordedRun.Load(dir);
        // One definition: summary.json's tokens/s is the report's (total tokens ÷ total time of steps 2–4)
        Assert.Equal(run.TokensPerSecond, (double)summary["tokens_per_second"]!, 6);
        var spread = summary["step_spread"]!;
        Assert.Equal(3, (int)spread["steps"]!);
        Assert.True((double)spread["min_ms"]! <= (double)spread["p50_ms"]! && (double)spread["p50_ms"]! <= (double)spread["max_ms"]!);
        Assert.Equal(Environment.ProcessorCount, (int)summary["logical_cores"]!);
        Assert.NotNull(summary["load_average_start"]);
        // On Linux the CPU times over the steps are there to tell other processes' work from the run's own.
        Assert.Equal(OperatingSystem.IsLinux(), summary["cpu_use"]?["other_cores"] is not null);
        // Whatever this machine's load, the summary, the table and the report agree on whether the comparison is reliable
        bool reliable = (bool)summary["timing_reliable"]!;
        Assert.Equal(reliable, !RunComparison.Of(run).Unreliable);
        Assert.Equal(!reliable, train.Console.Contains("UNRELIABLE", StringComparison.Ordinal));
        Assert.Contains("Step times after the first (n = 3)", train.Console);
        // Start-up (issue 14): launch to the first step, and the first step against the later ones' median
        double startup = (double)summary["startup_seconds"]!;
        Assert.InRange(startup, 0.0, (DateTime.Now - System.Diagnostics.Process.GetCurrentProcess().StartTime).TotalSeconds);
        var first = JsonNode.Parse(File.ReadLines(Path.Combine(dir, "metrics.jsonl")).First())!;
        Assert.Equal((double)first["wall_ms"]! / (double)spread["p50_ms"]!, (double)summary["first_step_ratio"]!, 6);
        Assert.Contains("start-up; first step", train.Console);
        // The phases start at the launch: what ran before the command, then the command's own work, in order, within the start-up.
        var phases = summary["startup_phases"]!.AsArray().Select(p => ((string)p!["name"]!, (double)p["seconds"]!)).ToArray();
        Assert.Equal(["launch to the command (a wrapper's work, .NET runtime, parsing)", "settings, model, profile, offload folder", "head and capacity checks"],
            phases.Take(3).Select(p => p.Item1));
        Assert.All(phases, p => Assert.True(p.Item2 >= 0, p.Item1));
        Assert.InRange(phases.Sum(p => p.Item2), 0.5 * startup, startup + 0.05);
        // The resident trainer's own phases, each with the process's resident set when it ended (issue 13: where the host memory grows).
        var names = phases.Select(p => p.Item1).ToList();
        Assert.True(names.IndexOf("torch runtime") < names.IndexOf("the model on the device") && names.IndexOf("the model on the device") < names.IndexOf("master weights, moments, gradient buffers and initial weights"),
            string.Join(" | ", names));
        Assert.True(names.IndexOf("torch runtime") >= 0, string.Join(" | ", names));
        if (OperatingSystem.IsLinux())
            Assert.All(summary["startup_phases"]!.AsArray(), p => Assert.True((long?)p!["resident_bytes"] > 0, (string?)p["name"]));
    }
}

namespace AiOs.Planner.Cli.Tests;

/// <summary>The delayed schedule on the command line: refused without a CPU optimizer, run with one, warned about in ds-config.</summary>
public sealed class DelayedScheduleCliTests : IDisposable
{
    private readonly TempDir _root = new("aios-dpu-cli-");

    public void Dispose() => _root.Dispose();

    [Fact]
    public void Given_the_delayed_schedule_without_a_cpu_optimizer_When_trained_Then_it_is_a_usage_error_naming_the_flags()
    {
        var result = CliRunner.Run("train", "--model", "tiny-gpt", "--steps", "1", "--seq-len", "16", "--micro-batch", "1",
            "--schedule", "delayed", "--runs-dir", _root.Combine("runs"));

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("delayed schedule", result.Console);
        Assert.Contains("--offload-optimizer cpu|nvme", result.Console);
    }

    [Fact]
    public void Given_the_delayed_schedule_with_the_optimizer_in_ram_When_trained_Then_it_completes()
    {
        var result = CliRunner.Run("train", "--model", "tiny-gpt", "--steps", "3", "--seq-len", "16", "--micro-batch", "1",
            "--zero-stage", "zero3", "--offload-params", "cpu", "--offload-optimizer", "cpu", "--schedule", "delayed",
            "--runs-dir", _root.Combine("runs"), "--run-id", "dpu");

        Assert.True(result.ExitCode == ExitCodes.Ok, result.Console);
        Assert.Equal(3, File.ReadAllLines(_root.Combine("runs", "dpu", "metrics.jsonl")).Length);
    }

    [Fact]
    public void Given_the_delayed_schedule_When_a_deepspeed_config_is_written_Then_a_warning_says_deepspeed_runs_it_serially()
    {
        var result = CliRunner.Run("ds-config", "--model", "gpt2", "--hardware", "h200-1x", "--zero-stage", "zero3", "--offload-optimizer", "cpu",
            "--schedule", "delayed");

        Assert.Equal(ExitCodes.Ok, result.ExitCode);
        Assert.Contains("no key for the delayed", result.Console);
    }
}

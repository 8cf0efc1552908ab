namespace AiOs.Planner.Cli.Tests;

/// <summary>One settings validator for every command: the same flag gets the same answer from plan, ds-config, tune and train.</summary>
public sealed class SettingsValidationTests : IDisposable
{
    private readonly TempDir _root = new("aios-validate-");

    public void Dispose() => _root.Dispose();

    private string[] Command(string command, params string[] extra)
    {
        string[] head = command switch
        {
            "train" => ["train", "--model", "tiny-gpt", "--steps", "1", "--seq-len", "16", "--runs-dir", _root.Combine("runs")],
            "tune" => ["tune", "--model", "tiny-gpt", "--hardware", "ci-2core-24gb", "--seq-len", "16", "--budget", "5"],
            _ => [command, "--model", "tiny-gpt", "--hardware", "ci-2core-24gb", "--seq-len", "16"],
        };
        return [.. head, .. extra];
    }

    [Theory]
    [InlineData("plan")]
    [InlineData("ds-config")]
    [InlineData("tune")]
    [InlineData("train")]
    public void Given_a_numeric_zero_stage_When_run_Then_every_command_refuses_it_listing_the_names(string command)
    {
        var r = CliRunner.Run(Command(command, "--zero-stage", "7"));

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("--zero-stage", r.Console);
        Assert.Contains("zero3", r.Console);
        Assert.False(Directory.Exists(_root.Combine("runs")));
    }

    [Theory]
    [InlineData("--offload-params", "2")]
    [InlineData("--offload-optimizer", "1")]
    [InlineData("--offload-gradients", "-1")]
    [InlineData("--precision", "0")]
    [InlineData("--schedule", "1")]
    [InlineData("--offload-params", "cpu,nvme")]
    public void Given_a_number_for_any_enum_flag_When_planned_Then_it_is_refused_at_parse_time(string flag, string value)
    {
        var r = CliRunner.Run(Command("plan", flag, value));

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains($"'{value}' is not a valid value for {flag}", r.Console);
    }

    [Theory]
    [InlineData("--objective", "1", "tune")]
    [InlineData("--precision", "2", "whatif")]
    public void Given_a_number_for_another_commands_enum_flag_When_run_Then_it_is_refused(string flag, string value, string command)
    {
        string[] args = command == "whatif"
            ? ["whatif", "--model", "tiny-gpt", "--hardware", "ci-2core-24gb", flag, value]
            : Command(command, flag, value);
        var r = CliRunner.Run(args);

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains($"'{value}' is not a valid value for {flag}", r.Console);
    }

    [Theory]
    [InlineData("--aio-block-size", "3")]
    [InlineData("--aio-block-size", "1K")]
    [InlineData("--aio-block-size", "0")]
    [InlineData("--aio-queue-depth", "0")]
    [InlineData("--aio-threads", "0")]
    [InlineData("--micro-batch", "0")]
    [InlineData("--buffer-count", "0")]
    public void Given_a_setting_out_of_range_When_trained_Then_train_refuses_it_as_plan_does(string flag, string value)
    {
        var train = CliRunner.Run(Command("train", flag, value));
        var plan = CliRunner.Run(Command("plan", flag, value));

        Assert.Equal(ExitCodes.Usage, train.ExitCode);
        Assert.Contains(flag, train.Console);
        Assert.Equal(ExitCodes.Usage, plan.ExitCode);
        Assert.Contains(flag, plan.Console);
        Assert.False(Directory.Exists(_root.Combine("runs")));
    }

    [Fact]
    public void Given_a_sequence_beyond_the_models_learned_positions_When_trained_Then_seq_len_is_named_before_training()
    {
        var r = CliRunner.Run("train", "--model", "tiny-gpt", "--steps", "1", "--seq-len", "4096", "--runs-dir", _root.Combine("runs"));

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("--seq-len", r.Console);
        Assert.False(Directory.Exists(_root.Combine("runs")));
    }

    [Theory]
    [InlineData("--no-nvme-offload-params", "--offload-params", "nvme")]
    [InlineData("--nvme-offload-params", "--offload-params", "cpu")]
    [InlineData("--no-nvme-offload-optimizer", "--offload-optimizer", "nvme")]
    [InlineData("--nvme-offload-gradients", "--offload-gradients", "cpu")]
    [InlineData("--pin-memory", "--no-pin-memory", null)]
    [InlineData("--nvme-offload-params", "--no-nvme-offload-params", null)]
    [InlineData("--nvme-offload-optimizer", "--no-nvme-offload-optimizer", null)]
    public void Given_contradicting_flags_When_run_Then_the_error_names_both(string first, string second, string? secondValue)
    {
        string[] extra = secondValue is null ? [first, second] : [first, second, secondValue];
        foreach (string command in new[] { "plan", "train" })
        {
            var r = CliRunner.Run(Command(command, extra));

            Assert.Equal(ExitCodes.Usage, r.ExitCode);
            Assert.Contains(first, r.Console);
            Assert.Contains(second, r.Console);
        }
    }

    [Fact]
    public void Given_flags_that_agree_When_run_Then_they_are_not_conflicts()
    {
        var r = CliRunner.Run(Command("plan", "--nvme-offload-params", "--offload-params", "nvme", "--nvme-offload-path", _root.Combine("nvme"),
            "--offload-optimizer", "cpu", "--pin-memory"));

        Assert.DoesNotContain("contradict", r.Console);
    }

    [Theory]
    [InlineData("plan")]
    [InlineData("train")]
    public void Given_a_settings_file_with_bad_values_When_run_Then_the_file_and_its_fields_are_named(string command)
    {
        string file = _root.Combine("bad-settings.json");
        File.WriteAllText(file, """{"micro_batch": 0, "aio": {"block_size": 1000, "queue_depth": 0}}""");

        var r = CliRunner.Run(Command(command, "--settings", file));

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        string console = r.Console.Replace("\n", "", StringComparison.Ordinal);
        Assert.Contains("bad-settings.json", console);
        Assert.Contains("$.micro_batch", console);
        Assert.Contains("$.aio.block_size", console);
        Assert.Contains("$.aio.queue_depth", console);
    }

    [Fact]
    public void Given_a_settings_file_with_a_numeric_stage_When_planned_Then_the_names_are_listed()
    {
        string file = _root.Combine("stage.json");
        File.WriteAllText(file, """{"zero_stage": "7"}""");

        var r = CliRunner.Run(Command("plan", "--settings", file));

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("zero3", r.Console);
    }
}

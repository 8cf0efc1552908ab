namespace AiOs.Planner.Cli.Tests;

public class CalibrateCommandTests
{
    [Fact]
    public void Given_a_missing_nvme_path_When_calibrating_Then_it_exits_2_and_says_the_folder_does_not_exist()
    {
        var r = CliRunner.Run("calibrate", "--nvme-path", "/tmp/aios-no-such-folder-" + Guid.NewGuid(), "--quick");

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("does not exist", r.Console, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_quick_and_full_together_When_calibrating_Then_it_exits_2()
    {
        var r = CliRunner.Run("calibrate", "--nvme-path", "/tmp", "--quick", "--full");

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
    }

    [Fact]
    public void Given_no_nvme_path_When_calibrating_Then_it_is_a_usage_error()
    {
        Assert.Equal(ExitCodes.Usage, CliRunner.Run("calibrate", "--quick").ExitCode);
    }

    [Fact]
    public void Given_a_bad_size_When_benchmarking_Then_it_is_a_usage_error()
    {
        Assert.Equal(ExitCodes.Usage, CliRunner.Run("bench-drive", "--path", "/tmp", "--run-size", "lots").ExitCode);
    }
}

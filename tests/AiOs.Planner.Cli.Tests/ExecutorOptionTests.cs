using System.Text.Json.Nodes;

namespace AiOs.Planner.Cli.Tests;

/// <summary>--executor on the planning commands: parsed by name, and it changes what the plan predicts.</summary>
public class ExecutorOptionTests
{
    private static JsonNode PlanJson(string executor)
    {
        var r = CliRunner.Run("plan", "--model", "gpt2-xl", "--hardware", "h200-1x-calibrated", "--micro-batch", "8", "--executor", executor, "--json");
        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        return JsonNode.Parse(r.Stdout)!;
    }

    [Theory]
    [InlineData("plan")]
    [InlineData("tune")]
    [InlineData("ds-config")]
    public void Given_a_number_for_executor_When_run_Then_it_is_refused_naming_the_choices(string command)
    {
        var r = CliRunner.Run(command, "--model", "gpt2", "--hardware", "h200-1x", "--executor", "1");

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("'1' is not a valid value for --executor", r.Console);
        Assert.Contains("aios, deepspeed", r.Console);
    }

    [Fact]
    public void Given_the_same_settings_When_planned_for_each_executor_Then_device_memory_and_step_time_differ()
    {
        var aios = PlanJson("aios");
        var deepSpeed = PlanJson("deepspeed");

        long aiosGpu = aios["memory"]!["gpu_reserved_peak_bytes"]!.GetValue<long>();
        long dsGpu = deepSpeed["memory"]!["gpu_reserved_peak_bytes"]!.GetValue<long>();
        Assert.True(aiosGpu < dsGpu, $"aios {aiosGpu}, deepspeed {dsGpu}");
        Assert.NotEqual(aios["step"]?.ToJsonString(), deepSpeed["step"]?.ToJsonString());
    }

    [Fact]
    public void Given_whatif_When_a_number_is_given_for_executor_Then_it_is_refused()
    {
        var r = CliRunner.Run("whatif", "--model", "tiny-gpt", "--hardware", "ci-2core-24gb", "--executor", "2");

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("--executor", r.Console);
    }
}

using System.Text.Json.Nodes;

namespace AiOs.Planner.Cli.Tests;

/// <summary>
/// <c>--cuda-graphs</c> on the command line: <c>plan --json</c> carries it in its settings, a launch-bound plan without it notes
/// what it would save, and the combinations the graphs cannot run are refused naming the flag to drop.
/// </summary>
public sealed class CudaGraphsOptionTests
{
    private static readonly string[] Gpt2XlMb1 = ["--model", "gpt2-xl", "--hardware", "h100-1x-vm", "--micro-batch", "1", "--seq-len", "1024", "--precision", "bf16", "--json"];

    [Fact]
    public void Given_a_launch_bound_plan_When_planned_with_and_without_the_graphs_Then_the_settings_carry_them_and_only_the_plan_without_notes_them()
    {
        var with = CliRunner.Run(["plan", .. Gpt2XlMb1, "--cuda-graphs"]);
        var without = CliRunner.Run(["plan", .. Gpt2XlMb1]);

        Assert.Equal(ExitCodes.Ok, with.ExitCode);
        Assert.Equal(ExitCodes.Ok, without.ExitCode);
        JsonNode a = JsonNode.Parse(with.Stdout)!, b = JsonNode.Parse(without.Stdout)!;
        Assert.True(a["settings"]!["cuda_graphs"]!.GetValue<bool>());
        Assert.False(b["settings"]!["cuda_graphs"]!.GetValue<bool>());
        double stepWith = a["step"]!["time_s"]!.GetValue<double>(), stepWithout = b["step"]!["time_s"]!.GetValue<double>();
        Assert.True(stepWith < stepWithout, $"{stepWith} s with the graphs against {stepWithout} s without");
        Assert.Contains(b["notes"]!.AsArray(), n => n!.GetValue<string>().Contains($"plans at {stepWith * 1e3:F1} ms"));
        // Asked for already, so not suggested; the profile has measured replays (since 2026-12-07), so no note says it lacks them.
        Assert.DoesNotContain(a["notes"]!.AsArray(), n => n!.GetValue<string>().Contains(" instead of "));
        Assert.DoesNotContain(a["notes"]!.AsArray(), n => n!.GetValue<string>().Contains("no measured replays"));
    }

    [Fact]
    public void Given_a_profile_without_measured_replays_When_planned_with_the_graphs_Then_the_plan_says_its_layers_are_priced_as_eager()
    {
        string[] onH200 = [.. Gpt2XlMb1.Select(a => a == "h100-1x-vm" ? "h200-1x-calibrated" : a), "--cuda-graphs"];

        var r = CliRunner.Run(["plan", .. onH200]);

        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        Assert.Contains(JsonNode.Parse(r.Stdout)!["notes"]!.AsArray(),
            n => n!.GetValue<string>().Contains("no measured replays (engine_kernels.graph_work)") && n.GetValue<string>().Contains("aios calibrate-gpu"));
    }

    [Theory]
    [InlineData("--grad-checkpointing", "drop one of the two")]
    [InlineData("--offload-activations", "drop one of the two")] // implies checkpointing: refused after the flags' implications
    [InlineData("--executor", "--executor aios")]
    public void Given_a_combination_the_graphs_cannot_run_When_planned_Then_it_is_refused_naming_the_fix(string flag, string fix)
    {
        string[] more = flag switch
        {
            "--offload-activations" => ["--offload-activations", "cpu"],
            "--executor" => ["--executor", "deepspeed"],
            _ => [flag],
        };

        var r = CliRunner.Run(["plan", .. Gpt2XlMb1, "--cuda-graphs", .. more]);

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("--cuda-graphs", r.Console + r.Stderr);
        Assert.Contains(fix, r.Console + r.Stderr);
    }
}

using System.Text.Json.Nodes;

namespace AiOs.Planner.Cli.Tests;

/// <summary><c>--master-weights fp32|split</c> on the planning commands (issue 15): fewer planned NVMe bytes, refusals that name the flag, ds-config's note.</summary>
public class MasterWeightsOptionTests
{
    private static readonly string[] Gpt2Xl = ["--model", "gpt2-xl", "--hardware", "h200-1x", "--offload-gradients", "cpu", "--max-in-cpu", "0",
        "--nvme-offload-path", "/tmp/aios-split-test", "--micro-batch", "8", "--grad-checkpointing"];

    private static readonly string[] Gpt2XlOnNvme = [.. Gpt2Xl, "--offload-optimizer", "nvme", "--offload-params", "nvme"];

    private static (long Read, long Written, string MasterWeights) Traffic(params string[] more)
    {
        var r = CliRunner.Run(["plan", .. Gpt2XlOnNvme, .. more, "--json"]);
        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        var doc = JsonNode.Parse(r.Stdout)!;
        return (doc["traffic"]!["nvme_read_bytes"]!.GetValue<long>(), doc["traffic"]!["nvme_write_bytes"]!.GetValue<long>(), doc["settings"]!["master_weights"]!.GetValue<string>());
    }

    [Fact]
    public void Given_8bit_with_split_masters_When_planned_Then_the_nvme_bytes_per_step_are_at_most_055_of_fp32_state_and_fewer_than_8bit()
    {
        var fp32 = Traffic();
        var q8 = Traffic("--optimizer-state", "8bit");
        var split = Traffic("--optimizer-state", "8bit", "--master-weights", "split");

        Assert.Equal("fp32", fp32.MasterWeights);
        Assert.Equal("split", split.MasterWeights);
        long parameters = 1_557_611_200; // gpt2-xl
        long layer = 30_740_800, outer = 82_052_800; // 12h² + 13h; the embeddings, positions and final norm
        // 2 B/param less written; read: 2 less state, 2 more of the parameters' high halves, except those still staged from the
        // unit's last read of the step: the outer block and the five layers read last (buffer_count 5) under the deepspeed
        // schedule, every unit under the overlapped one.
        Assert.Equal(q8.Written - 2 * parameters, split.Written);
        Assert.Equal(q8.Read - 2 * (outer + 5 * layer), split.Read);
        var q8Overlapped = Traffic("--optimizer-state", "8bit", "--schedule", "overlapped");
        var splitOverlapped = Traffic("--optimizer-state", "8bit", "--master-weights", "split", "--schedule", "overlapped");
        Assert.Equal(q8Overlapped.Read - 2 * parameters, splitOverlapped.Read);
        double ratio = (double)(split.Read + split.Written) / (fp32.Read + fp32.Written);
        Assert.InRange(ratio, 0.5, 0.55);
    }

    [Theory]
    [InlineData("--offload-optimizer cpu --offload-params nvme", "--offload-optimizer nvme")]
    [InlineData("--offload-optimizer nvme --offload-params none", "--offload-params cpu|nvme")]
    [InlineData("--offload-optimizer nvme --offload-params nvme --precision fp16", "--precision bf16")]
    [InlineData("--offload-optimizer nvme --offload-params nvme --executor deepspeed", "--executor aios")]
    public void Given_split_masters_where_they_cannot_run_When_planned_Then_it_is_refused_naming_the_flag_and_the_fix(string flags, string fix)
    {
        var r = CliRunner.Run(["plan", .. Gpt2Xl, .. flags.Split(' '), "--master-weights", "split"]);

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("--master-weights", r.Console + r.Stderr);
        Assert.Contains(fix, r.Console + r.Stderr);
    }

    [Fact]
    public void Given_an_unknown_master_format_When_run_Then_it_is_refused_listing_both()
    {
        var r = CliRunner.Run("plan", "--model", "gpt2", "--hardware", "h200-1x", "--master-weights", "bf16");

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("'bf16' is not a valid value for --master-weights; use one of fp32, split", r.Console + r.Stderr);
    }

    [Fact]
    public void Given_split_masters_When_a_deepspeed_config_is_emitted_Then_it_keeps_fp32_masters_and_a_warning_says_so()
    {
        var split = CliRunner.Run(["ds-config", .. Gpt2XlOnNvme, "--master-weights", "split"]);
        var fp32 = CliRunner.Run(["ds-config", .. Gpt2XlOnNvme]);

        Assert.Equal(ExitCodes.Ok, split.ExitCode);
        Assert.Equal(fp32.Stdout, split.Stdout);
        Assert.Contains("the config keeps fp32 master weights", split.Console + split.Stderr);
        Assert.DoesNotContain("master-weights", fp32.Console + fp32.Stderr);
    }
}

using System.Text.Json.Nodes;

namespace AiOs.Planner.Cli.Tests;

/// <summary>--optimizer-state and --allow-8bit-optimizer on the planning commands (issue 15).</summary>
public class OptimizerStateOptionTests
{
    private static readonly string[] NvmeOptimizer = ["--model", "gpt2-xl", "--hardware", "h200-1x", "--zero-stage", "infinity", "--offload-optimizer", "nvme",
        "--offload-params", "nvme", "--nvme-offload-path", "/tmp/aios-8bit-test", "--micro-batch", "8"];

    private static long NvmePeak(string format)
    {
        var r = CliRunner.Run(["plan", .. NvmeOptimizer, "--optimizer-state", format, "--json"]);
        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        var memory = JsonNode.Parse(r.Stdout)!["memory"]!;
        return memory["nvme_bytes"]!.GetValue<long>();
    }

    [Fact]
    public void Given_8bit_When_planned_Then_nvme_holds_fewer_bytes_than_fp32_by_about_the_optimizer_half()
    {
        long fp32 = NvmePeak("fp32"), q8 = NvmePeak("8bit");
        long parameters = 1_557_611_200; // gpt2-xl
        // 6 of the 12 bytes per parameter go (less the block scales), within a percent.
        Assert.InRange(fp32 - q8, parameters * 6 * 0.99, parameters * 6 * 1.001);
    }

    [Theory]
    [InlineData("plan", "deepspeed")]
    [InlineData("ds-config", null)]
    public void Given_8bit_without_an_offloaded_optimizer_for_deepspeed_When_run_Then_it_is_refused_naming_the_fix(string command, string? executor)
    {
        var r = CliRunner.Run([command, "--model", "gpt2", "--hardware", "h200-1x", "--optimizer-state", "8bit", .. executor is null ? Array.Empty<string>() : ["--executor", executor]]);

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("DeepSpeed's GPU optimizer has no 8-bit state", r.Console + r.Stderr);
        Assert.Contains("--optimizer-state fp32", r.Console + r.Stderr);
    }

    [Fact]
    public void Given_8bit_without_an_offloaded_optimizer_for_the_aios_engine_When_planned_Then_the_device_holds_8bit_moments()
    {
        var r = CliRunner.Run("plan", "--model", "gpt2", "--hardware", "h200-1x", "--optimizer-state", "8bit");

        Assert.Equal(0, r.ExitCode);
        Assert.Contains("block-wise", r.Console);
    }

    [Fact]
    public void Given_an_unknown_format_When_run_Then_it_is_refused_listing_both()
    {
        var r = CliRunner.Run("plan", "--model", "gpt2", "--hardware", "h200-1x", "--optimizer-state", "4bit");

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("'4bit' is not a valid value for --optimizer-state; use fp32 or 8bit", r.Console + r.Stderr);
    }

    [Fact]
    public void Given_8bit_When_a_deepspeed_config_is_emitted_Then_it_is_fp32_and_a_warning_says_so()
    {
        var q8 = CliRunner.Run(["ds-config", .. NvmeOptimizer, "--optimizer-state", "8bit"]);
        var fp32 = CliRunner.Run(["ds-config", .. NvmeOptimizer]);

        Assert.Equal(fp32.Stdout, q8.Stdout);
        Assert.Contains("no 8-bit state", q8.Console + q8.Stderr);
        Assert.DoesNotContain("8-bit", fp32.Console + fp32.Stderr);
    }

    [Fact]
    public void Given_allow_8bit_When_tuned_with_out_Then_the_settings_file_round_trips_through_plan()
    {
        // A folder that does not exist yet, as tune --out may be given.
        using var tmp = new TempDir("aios-8bit-tune-");
        string folder = tmp.Combine("out");
        var r = CliRunner.Run("tune", "--model", "gpt2-xl", "--hardware", "rtx4090-64gb-pcie4", "--nvme-offload-path", "/tmp/aios-8bit-test",
            "--global-batch", "4", "--budget", "600", "--allow-8bit-optimizer", "--out", folder);
        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        var settings = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "aios-settings.json")))!;
        Assert.NotNull(settings["optimizer_state"]);

        var plan = CliRunner.Run("plan", "--model", "gpt2-xl", "--hardware", "rtx4090-64gb-pcie4", "--settings", Path.Combine(folder, "aios-settings.json"), "--json");
        Assert.Equal(ExitCodes.Ok, plan.ExitCode);
        Assert.Equal(settings["optimizer_state"]!.GetValue<string>(), JsonNode.Parse(plan.Stdout)!["settings"]!["optimizer_state"]!.GetValue<string>());
    }

    [Fact]
    public void Given_whatif_When_8bit_is_allowed_Then_it_runs()
    {
        var r = CliRunner.Run("whatif", "--model", "tiny-gpt", "--hardware", "ci-2core-24gb", "--no-upgrades", "--budget", "200", "--allow-8bit-optimizer", "--json");
        Assert.Equal(ExitCodes.Ok, r.ExitCode);
    }
}

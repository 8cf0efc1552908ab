using System.Text.Json.Nodes;

namespace AiOs.Planner.Cli.Tests;

public class PlanCommandTests
{
    [Fact]
    public void Given_the_done_when_command_When_run_with_json_Then_the_contract_fields_are_present()
    {
        // 83.8 GB is PyTorch's measured peak (autocast, fused AdamW): the deepspeed executor's anchor.
        var r = CliRunner.Run("plan", "--model", "gpt2-xl", "--hardware", "h200-1x", "--micro-batch", "8", "--precision", "bf16", "--executor", "deepspeed", "--json");
        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        var doc = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(1_557_611_200L, doc["model"]!["params"]!.GetValue<long>());
        Assert.True(doc["feasible"]!.GetValue<bool>());
        Assert.Empty(doc["problems"]!.AsArray());
        var memory = doc["memory"]!;
        foreach (string field in new[] { "gpu_peak_bytes", "cpu_peak_bytes", "cpu_pinned_bytes", "nvme_bytes" })
            Assert.NotNull(memory[field]);
        Assert.InRange(memory["gpu_peak_bytes"]!.GetValue<long>() / 1e9, 83.8 * 0.9, 83.8 * 1.1);
        Assert.NotEmpty(memory["breakdown"]!["gpu"]!.AsArray());
    }

    [Fact]
    public void Given_a_plan_that_does_not_fit_When_run_Then_the_exit_code_says_infeasible_and_the_problem_is_shown()
    {
        var r = CliRunner.Run("plan", "--model", "llama-2-70b", "--hardware", "rtx4090-64gb-pcie4");
        Assert.Equal(ExitCodes.Infeasible, r.ExitCode);
        Assert.Contains("Not feasible", r.Console);
        Assert.Contains("GPU memory", r.Console);
    }

    [Fact]
    public void Given_an_unknown_model_When_run_Then_usage_error_lists_the_models()
    {
        var r = CliRunner.Run("plan", "--model", "gpt-9", "--hardware", "h200-1x");
        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("Unknown model 'gpt-9'", r.Console);
        Assert.Contains("llama-2-7b", r.Console);
    }

    [Fact]
    public void Given_an_unknown_profile_When_run_Then_usage_error_lists_the_profiles()
    {
        var r = CliRunner.Run("plan", "--model", "gpt2", "--hardware", "dgx-z");
        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("dgx-a100", r.Console);
    }

    [Fact]
    public void Given_micro_batch_zero_When_run_Then_the_flag_to_change_is_named()
    {
        // Out-of-range settings are refused by the shared validator before planning (as train refuses them), so no JSON is printed.
        var r = CliRunner.Run("plan", "--model", "gpt2", "--hardware", "h200-1x", "--micro-batch", "0", "--json");
        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        // A refused setting is an error: nothing on stdout (so `--json | jq` sees no document), the flag named on stderr.
        Assert.Equal("", r.Stdout + r.Tables);
        Assert.Contains("--micro-batch", r.Stderr);
    }

    [Fact]
    public void Given_nvme_offload_without_a_path_When_run_Then_the_path_flag_is_named()
    {
        var r = CliRunner.Run("plan", "--model", "gpt2", "--hardware", "h200-1x", "--nvme-offload-params");
        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("--nvme-offload-path", r.Console);
    }

    [Fact]
    public void Given_an_nvme_path_When_run_Then_parameters_and_optimizer_go_to_nvme_under_infinity()
    {
        var r = CliRunner.Run("plan", "--model", "llama-2-7b", "--hardware", "rtx4090-64gb-pcie4", "--nvme-offload-path", "/nvme",
            "--buffer-size", "300000000", "--sub-group-size", "100000000", "--grad-checkpointing", "--json");
        var doc = JsonNode.Parse(r.Stdout)!;
        Assert.Equal("infinity", doc["settings"]!["zero_stage"]!.GetValue<string>());
        Assert.Equal("nvme", doc["settings"]!["param_offload"]!.GetValue<string>());
        Assert.True(doc["memory"]!["nvme_bytes"]!.GetValue<long>() > 6_738_415_616L * 14);
        Assert.Equal(ExitCodes.Ok, r.ExitCode);
    }

    [Fact]
    public void Given_a_bad_flag_value_When_run_Then_it_is_a_usage_error()
    {
        Assert.Equal(ExitCodes.Usage, CliRunner.Run("plan", "--model", "gpt2", "--hardware", "h200-1x", "--precision", "fp8").ExitCode);
        var r = CliRunner.Run("plan", "--model", "gpt2", "--hardware", "h200-1x", "--aio-block-size", "big");
        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("not a size", r.Console);
    }

    [Fact]
    public void Given_a_huggingface_config_path_When_planned_Then_it_is_accepted_as_the_model()
    {
        using var tmp = new TempDir();
        string dir = tmp.Path;
        File.WriteAllText(Path.Combine(dir, "config.json"), """{"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257}""");
        var r = CliRunner.Run("plan", "--model", Path.Combine(dir, "config.json"), "--hardware", "h200-1x", "--json");
        Assert.Equal(124_439_808L, JsonNode.Parse(r.Stdout)!["model"]!["params"]!.GetValue<long>());
    }

    [Fact]
    public void Given_the_table_output_When_run_Then_tiers_and_breakdown_are_shown()
    {
        var r = CliRunner.Run("plan", "--model", "gpt2", "--hardware", "h200-1x");
        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        Assert.Contains("Peak memory per tier", r.Console);
        Assert.Contains("optimizer states", r.Console);
        Assert.Contains("Feasible", r.Console);
    }
}

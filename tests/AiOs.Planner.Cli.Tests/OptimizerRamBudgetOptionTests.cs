using System.Text.Json.Nodes;

namespace AiOs.Planner.Cli.Tests;

/// <summary>--optimizer-ram-budget through plan, ds-config, a settings file and train; its bad inputs name the flag and the fix.</summary>
public sealed class OptimizerRamBudgetOptionTests : IDisposable
{
    private readonly TempDir _root = new("aios-budget-");

    public void Dispose() => _root.Dispose();

    private string[] Gpt2XlOnNvme(params string[] more) =>
        ["--model", "gpt2-xl", "--hardware", "h200-1x", "--nvme-offload-path", _root.Combine("nvme"), "--offload-params", "cpu",
         "--offload-optimizer", "nvme", .. more];

    private static JsonNode Memory(CliRunner.Result r)
    {
        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        return JsonNode.Parse(r.Stdout)!["memory"]!;
    }

    [Fact]
    public void Given_a_budget_When_planned_Then_host_ram_grows_and_nvme_shrinks_against_all_nvme()
    {
        var allNvme = Memory(CliRunner.Run(["plan", .. Gpt2XlOnNvme("--json")]));
        var mixed = Memory(CliRunner.Run(["plan", .. Gpt2XlOnNvme("--optimizer-ram-budget", "10G", "--json")]));

        Assert.True(mixed["cpu_peak_bytes"]!.GetValue<long>() > allNvme["cpu_peak_bytes"]!.GetValue<long>());
        Assert.True(mixed["nvme_bytes"]!.GetValue<long>() < allNvme["nvme_bytes"]!.GetValue<long>());
    }

    [Fact]
    public void Given_the_budget_in_a_settings_file_When_planned_Then_it_counts_as_the_flag_does()
    {
        string file = _root.Combine("settings.json");
        File.WriteAllText(file, """{ "zero_stage": "infinity", "param_offload": "cpu", "optimizer_offload": "nvme", "nvme_path": "/nvme", "optimizer_ram_budget": "10G" }""");

        var fromFile = Memory(CliRunner.Run("plan", "--model", "gpt2-xl", "--hardware", "h200-1x", "--settings", file, "--json"));
        var fromFlag = Memory(CliRunner.Run("plan", "--model", "gpt2-xl", "--hardware", "h200-1x", "--settings", file, "--optimizer-ram-budget", "10G", "--json"));
        var none = Memory(CliRunner.Run("plan", "--model", "gpt2-xl", "--hardware", "h200-1x", "--settings", file, "--optimizer-ram-budget", "0", "--json"));

        Assert.Equal(fromFlag["cpu_peak_bytes"]!.GetValue<long>(), fromFile["cpu_peak_bytes"]!.GetValue<long>());
        Assert.True(none["cpu_peak_bytes"]!.GetValue<long>() < fromFile["cpu_peak_bytes"]!.GetValue<long>());
    }

    [Theory]
    [InlineData("lots")]
    [InlineData("-5G")]
    public void Given_an_unparsable_or_negative_budget_When_planned_Then_the_flag_is_named(string value)
    {
        var r = CliRunner.Run(["plan", .. Gpt2XlOnNvme("--optimizer-ram-budget=" + value)]);

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("--optimizer-ram-budget", r.Console + r.Stderr);
    }

    [Fact]
    public void Given_a_budget_without_an_nvme_optimizer_When_planned_Then_the_fix_is_named()
    {
        var r = CliRunner.Run("plan", "--model", "gpt2-xl", "--hardware", "h200-1x", "--offload-params", "cpu", "--offload-optimizer", "cpu",
            "--optimizer-ram-budget", "10G");

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("--optimizer-ram-budget", r.Console + r.Stderr);
        Assert.Contains("--offload-optimizer nvme", r.Console + r.Stderr);
    }

    [Fact]
    public void Given_a_budget_that_spills_When_ds_config_runs_Then_the_config_is_all_nvme_and_a_note_says_why()
    {
        var r = CliRunner.Run(["ds-config", .. Gpt2XlOnNvme("--optimizer-ram-budget", "10G")]);

        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        Assert.Equal("nvme", JsonNode.Parse(r.Stdout)!["zero_optimization"]!["offload_optimizer"]!["device"]!.GetValue<string>());
        Assert.Contains("cannot split the optimizer", r.Stderr);
    }

    [Fact]
    public void Given_tiny_gpt_with_a_budget_When_trained_Then_it_completes_and_the_run_record_keeps_the_budget()
    {
        var r = CliRunner.Run("train", "--model", "tiny-gpt", "--steps", "2", "--seq-len", "16", "--micro-batch", "1", "--sub-group-size", "20000",
            "--offload-params", "cpu", "--offload-optimizer", "nvme", "--nvme-offload-path", _root.Combine("nvme"), "--optimizer-ram-budget", "300K",
            "--runs-dir", _root.Combine("runs"), "--run-id", "budget", "--json");

        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        Assert.Contains(Directory.EnumerateFiles(_root.Combine("runs", "budget"), "*.json", SearchOption.AllDirectories),
            f => File.ReadAllText(f).Contains("\"optimizer_ram_budget\": 307200", StringComparison.Ordinal));
    }
}

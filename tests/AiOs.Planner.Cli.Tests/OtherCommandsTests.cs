using System.Text.Json.Nodes;

namespace AiOs.Planner.Cli.Tests;

public class OtherCommandsTests
{
    [Fact]
    public void Given_ds_config_with_out_When_run_Then_a_valid_config_file_is_written()
    {
        using var tmp = new TempDir();
        string path = tmp.Combine("ds_config.json");
        var r = CliRunner.Run("ds-config", "--model", "llama-2-7b", "--hardware", "rtx4090-64gb-pcie4", "--nvme-offload-path", "/local_nvme",
            "--buffer-size", "200000000", "--sub-group-size", "100000000", "--grad-checkpointing", "--aio-queue-depth", "32", "--out", path);
        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        var config = JsonNode.Parse(File.ReadAllText(path))!;
        Assert.Equal(32, config["aio"]!["queue_depth"]!.GetValue<int>());
        Assert.Equal("/local_nvme", config["zero_optimization"]!["offload_param"]!["nvme_path"]!.GetValue<string>());
    }

    [Fact]
    public void Given_invalid_settings_When_ds_config_runs_Then_no_config_is_written()
    {
        using var tmp = new TempDir();
        string path = tmp.Combine("ds_config.json");
        var r = CliRunner.Run("ds-config", "--model", "gpt2", "--hardware", "h200-1x", "--zero-stage", "zero2", "--offload-params", "cpu", "--out", path);
        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.False(File.Exists(path));
        Assert.Contains("--zero-stage", r.Console);
    }

    [Fact]
    public void Given_models_and_profiles_When_listed_as_json_Then_every_bundled_entry_is_there()
    {
        var models = JsonNode.Parse(CliRunner.Run("models", "--json").Stdout)!["models"]!.AsArray();
        Assert.Contains(models, m => m!["name"]!.GetValue<string>() == "gpt3-175b");
        var profiles = JsonNode.Parse(CliRunner.Run("profiles", "--json").Stdout)!["profiles"]!.AsArray();
        Assert.Contains(profiles, p => p!["name"]!.GetValue<string>() == "h200-1x");
        Assert.Contains("gpt2-xl", CliRunner.Run("models").Console);
        Assert.Contains("dgx-a100", CliRunner.Run("profiles").Console);
    }

    [Fact]
    public void Given_a_writable_folder_and_a_model_When_check_nvme_runs_Then_it_reports_needs_and_facts()
    {
        using var tmp = new TempDir("aios-cli-");
        string folder = tmp.Combine("nvme"); // not created: check-nvme is given a folder that does not exist yet
        var r = CliRunner.Run("check-nvme", folder, "--model", "gpt2", "--hardware", "h200-1x", "--json");
        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        var doc = JsonNode.Parse(r.Stdout)!;
        Assert.True(doc["usable"]!.GetValue<bool>());
        Assert.True(doc["required_bytes"]!.GetValue<long>() > 124_439_808L * 14);
        Assert.NotNull(doc["storage"]!["filesystem"]);
    }

    [Fact]
    public void Given_a_file_instead_of_a_folder_When_check_nvme_runs_with_no_fallback_Then_it_fails()
    {
        string file = Path.GetTempFileName();
        var r = CliRunner.Run("check-nvme", file, "--model", "gpt2", "--hardware", "h200-1x", "--no-fallback");
        Assert.Equal(ExitCodes.Infeasible, r.ExitCode);
        Assert.Contains("--no-fallback", r.Console);
        var fallback = CliRunner.Run("check-nvme", file, "--model", "gpt2", "--hardware", "h200-1x");
        Assert.Equal(ExitCodes.FellBackToCpu, fallback.ExitCode);
        Assert.Contains("Falling back to CPU offload", fallback.Stderr);
    }

    [Fact]
    public void Given_only_a_model_When_check_nvme_runs_Then_it_asks_for_the_hardware_too()
    {
        Assert.Equal(ExitCodes.Usage, CliRunner.Run("check-nvme", "/tmp", "--model", "gpt2").ExitCode);
    }
}

public class TuneCommandTests
{
    [Fact]
    public void Given_a_model_and_machine_When_tuned_with_out_Then_settings_and_ds_config_are_written_and_reusable()
    {
        using var tmp = new TempDir();
        string folder = tmp.Path;
        var r = CliRunner.Run("tune", "--model", "gpt2-xl", "--hardware", "rtx4090-64gb-pcie4", "--nvme-offload-path", "/nvme", "--budget", "400", "--out", folder, "--json");
        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        var doc = JsonNode.Parse(r.Stdout)!;
        double tokens = doc["best"]!["tokens_per_s"]!.GetValue<double>();
        Assert.True(tokens > 0);
        Assert.True(File.Exists(Path.Combine(folder, "ds_config.json")));
        var plan = CliRunner.Run("plan", "--model", "gpt2-xl", "--hardware", "rtx4090-64gb-pcie4", "--settings", Path.Combine(folder, "aios-settings.json"), "--json");
        Assert.Equal(ExitCodes.Ok, plan.ExitCode);
        Assert.Equal(tokens, JsonNode.Parse(plan.Stdout)!["step"]!["tokens_per_s"]!.GetValue<double>(), 6);
    }
}

public class WhatIfCommandTests
{
    [Fact]
    public void Given_models_and_machines_When_asked_what_if_Then_every_pair_and_upgrade_has_a_row()
    {
        var r = CliRunner.Run("whatif", "--model", "gpt2,llama-2-7b", "--hardware", "rtx4090-64gb-pcie4,ci-2core-24gb", "--min-tokens-per-s", "100", "--budget", "500", "--json");
        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        var cells = JsonNode.Parse(r.Stdout)!["cells"]!.AsArray();
        // rtx4090: as is, +1 drive, 2× RAM, +1 GPU; ci: as is, +1 drive, 2× RAM (no GPU to add) — two models each.
        Assert.Equal((4 + 3) * 2, cells.Count);
        var asIs = cells.Where(c => c!["variant"]!.GetValue<string>() == "as is" && c["hardware"]!.GetValue<string>() == "rtx4090-64gb-pcie4").ToList();
        Assert.All(asIs, c => Assert.True(c!["fits"]!.GetValue<bool>()));
        var drive = cells.Single(c => c!["variant"]!.GetValue<string>() == "+1 drive" && c["hardware"]!.GetValue<string>() == "rtx4090-64gb-pcie4" && c["model"]!.GetValue<string>() == "llama-2-7b");
        var plain = asIs.Single(c => c!["model"]!.GetValue<string>() == "llama-2-7b");
        Assert.True(drive!["tokens_per_s"]!.GetValue<double>() >= plain!["tokens_per_s"]!.GetValue<double>());
        Assert.Equal("llama-2-7b", JsonNode.Parse(r.Stdout)!["largest_at_rate"]!["rtx4090-64gb-pcie4"]!.GetValue<string>());
    }
}

public class DsConfigStdoutTests
{
    [Fact]
    public void Given_a_plan_that_does_not_fit_When_the_config_goes_to_stdout_Then_stdout_is_only_the_json()
    {
        var r = CliRunner.Run("ds-config", "--model", "llama-2-70b", "--hardware", "rtx4090-64gb-pcie4", "--zero-stage", "zero3");
        Assert.Equal(ExitCodes.Infeasible, r.ExitCode);
        Assert.NotNull(JsonNode.Parse(r.Stdout));
        Assert.DoesNotContain("warning", r.Stdout);
    }
}

using System.Text.Json.Nodes;

namespace AiOs.Planner.Cli.Tests;

public class OtherCommandsTests
{
    [Fact]
    public void Given_ds_config_with_out_When_run_Then_a_valid_config_file_is_written()
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "ds_config.json");
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
        string path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "ds_config.json");
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
        string folder = Path.Combine(Path.GetTempPath(), "aios-cli-" + Guid.NewGuid().ToString("N"));
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
        Assert.Equal(ExitCodes.Ok, fallback.ExitCode);
        Assert.Contains("Falling back to CPU offload", fallback.Console);
    }

    [Fact]
    public void Given_only_a_model_When_check_nvme_runs_Then_it_asks_for_the_hardware_too()
    {
        Assert.Equal(ExitCodes.Usage, CliRunner.Run("check-nvme", "/tmp", "--model", "gpt2").ExitCode);
    }
}

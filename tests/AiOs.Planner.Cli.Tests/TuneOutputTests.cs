using System.Text.Json.Nodes;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Cli.Tests;

/// <summary><c>aios tune</c> and <c>aios whatif</c>: which file gets which plan, the new fields, and bad fixed settings.</summary>
public class TuneOutputTests
{
    [Fact]
    public void Given_an_overlapped_best_When_tuned_with_out_Then_ds_config_comes_from_the_deepspeed_best_and_the_output_says_so()
    {
        using var tmp = new TempDir();
        string folder = tmp.Path;
        var r = CliRunner.Run("tune", "--model", "gpt2-xl", "--hardware", "rtx4090-64gb-pcie4", "--budget", "800", "--out", folder, "--json");

        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        var doc = JsonNode.Parse(r.Stdout)!;
        Assert.Equal("overlapped", doc["best"]!["settings"]!["schedule"]!.GetValue<string>());
        var dsBest = doc["deepspeed_best"]!;
        Assert.True(dsBest["runs_on_deepspeed"]!.GetValue<bool>());
        var dsSettings = System.Text.Json.JsonSerializer.Deserialize<TrainingSettings>(dsBest["settings"], DescriptionJson.Options)!;
        // The file must be what `aios ds-config` writes for the DeepSpeed best (same learning-rate defaults and scheduler).
        string settingsFile = Path.Combine(folder, "ds-best-settings.json");
        DescriptionJson.WriteFileAtomic(settingsFile, dsSettings);
        string expectedFile = Path.Combine(folder, "expected.json");
        Assert.Equal(ExitCodes.Ok, CliRunner.Run("ds-config", "--model", "gpt2-xl", "--hardware", "rtx4090-64gb-pcie4", "--settings", settingsFile, "--out", expectedFile).ExitCode);
        Assert.Equal(File.ReadAllText(expectedFile), File.ReadAllText(Path.Combine(folder, "ds_config.json")));
        Assert.Equal(StepSchedule.Overlapped, DescriptionJson.ReadFile<TrainingSettings>(Path.Combine(folder, "aios-settings.json")).Schedule);
        Assert.Contains(doc["warnings"]!.AsArray(), w => w!.GetValue<string>().Contains("overlapped schedule is the aios engine's", StringComparison.Ordinal));
        Assert.EndsWith("ds_config.json", doc["files"]!["ds_config"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public void Given_a_tune_When_printed_as_json_Then_global_batch_headroom_and_near_limits_are_there()
    {
        var r = CliRunner.Run("tune", "--model", "gpt2", "--hardware", "dgx-a100", "--budget", "300", "--global-batch", "64", "--memory-headroom", "0.1", "--json");

        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        var doc = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(64, doc["global_batch"]!.GetValue<int>());
        Assert.Equal(0.1, doc["memory_headroom"]!.GetValue<double>());
        Assert.NotNull(doc["near_limits"]!.AsArray());
        Assert.Equal(64, doc["best"]!["sequences_per_step"]!.GetValue<long>());
        Assert.Equal(64 * 1024, doc["best"]!["tokens_per_step"]!.GetValue<long>());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Given_a_micro_batch_on_the_command_line_When_tuned_Then_every_candidate_keeps_it_and_without_it_the_tuner_searches(bool given)
    {
        string[] args = ["tune", "--model", "gpt2", "--hardware", "h200-1x", "--budget", "200", "--json"];
        var r = CliRunner.Run(given ? [.. args, "--micro-batch", "3"] : args);

        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        var doc = JsonNode.Parse(r.Stdout)!;
        int best = doc["best"]!["settings"]!["micro_batch"]!.GetValue<int>();
        if (given) Assert.Equal(3, best);
        else Assert.NotEqual(3, best); // gpt2 on an H200 fits far larger micro-batches, and the search prefers them
    }

    [Fact]
    public void Given_two_gpus_on_a_one_gpu_profile_When_tuned_Then_the_error_names_gpus_and_the_exit_code_is_usage()
    {
        var r = CliRunner.Run("tune", "--model", "gpt2-xl", "--hardware", "h200-1x", "--gpus", "2");

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("--gpus", r.Console, StringComparison.Ordinal);
        Assert.DoesNotContain("overflows", r.Console, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_the_same_inputs_When_whatif_and_tune_run_Then_they_report_the_same_tokens_per_second_and_global_batch()
    {
        var tune = JsonNode.Parse(CliRunner.Run("tune", "--model", "gpt2-xl", "--hardware", "rtx4090-64gb-pcie4", "--budget", "500", "--json").Stdout)!;
        var whatif = JsonNode.Parse(CliRunner.Run("whatif", "--model", "gpt2-xl", "--hardware", "rtx4090-64gb-pcie4", "--no-upgrades", "--budget", "500", "--json").Stdout)!;

        var cell = Assert.Single(whatif["cells"]!.AsArray())!;
        Assert.Equal(tune["best"]!["tokens_per_s"]!.GetValue<double>(), cell["tokens_per_s"]!.GetValue<double>());
        Assert.Equal(tune["best"]!["sequences_per_step"]!.GetValue<long>(), cell["sequences_per_step"]!.GetValue<long>());
    }

    [Fact]
    public void Given_a_bad_headroom_When_whatif_runs_Then_the_error_names_the_flag()
    {
        var r = CliRunner.Run("whatif", "--model", "gpt2", "--hardware", "h200-1x", "--memory-headroom", "5");
        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("--memory-headroom", r.Console, StringComparison.Ordinal);
    }
}

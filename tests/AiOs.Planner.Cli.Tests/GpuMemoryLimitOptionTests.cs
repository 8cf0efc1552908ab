using System.Text.Json.Nodes;

namespace AiOs.Planner.Cli.Tests;

/// <summary>--gpu-memory-limit on plan, tune and whatif: the profile's GPU planned with its memory held to the limit (issue 14 item 3).</summary>
public class GpuMemoryLimitOptionTests
{
    private static readonly string[] Gpt2Xl = ["--model", "gpt2-xl", "--hardware", "h200-1x", "--micro-batch", "8"];

    [Fact]
    public void Given_a_limit_When_planned_as_json_Then_capacity_is_the_limit_and_the_document_names_it()
    {
        var whole = CliRunner.Run(["plan", .. Gpt2Xl, "--memory-only", "--json"]);
        var held = CliRunner.Run(["plan", .. Gpt2Xl, "--memory-only", "--json", "--gpu-memory-limit", "11G"]);

        var w = JsonNode.Parse(whole.Stdout)!;
        var h = JsonNode.Parse(held.Stdout)!;
        Assert.Equal(11L << 30, h["memory"]!["gpu_capacity_bytes"]!.GetValue<long>());
        Assert.Equal(11L << 30, h["hardware"]!["gpu_memory_limit_bytes"]!.GetValue<long>());
        Assert.Null(w["hardware"]!["gpu_memory_limit_bytes"]);
        Assert.True(w["memory"]!["gpu_capacity_bytes"]!.GetValue<long>() > 100L << 30);
        Assert.Contains(h["notes"]!.AsArray(), n => n!.GetValue<string>().Contains("--gpu-memory-limit 11.00 GiB"));
    }

    [Fact]
    public void Given_a_limit_the_settings_do_not_fit_When_planned_Then_infeasible_where_the_whole_card_fits()
    {
        // gpt2-xl with no offload at micro-batch 8 needs far more than 11 GiB, far less than the H200's 139 GiB.
        var whole = CliRunner.Run(["plan", .. Gpt2Xl, "--memory-only"]);
        var held = CliRunner.Run(["plan", .. Gpt2Xl, "--memory-only", "--gpu-memory-limit", "11G"]);

        Assert.Equal(ExitCodes.Ok, whole.ExitCode);
        Assert.Equal(ExitCodes.Infeasible, held.ExitCode);
        Assert.Contains("--gpu-memory-limit", held.Console);
    }

    [Theory]
    [InlineData("plan")]
    [InlineData("tune")]
    [InlineData("whatif")]
    public void Given_a_limit_above_the_card_When_run_Then_refused_naming_the_card_memory(string command)
    {
        var r = CliRunner.Run(command, "--model", "gpt2", "--hardware", "h200-1x", "--gpu-memory-limit", "200G");

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("--gpu-memory-limit 200.00 GiB is above", r.Console);
    }

    [Theory]
    [InlineData("plan")]
    [InlineData("tune")]
    [InlineData("whatif")]
    public void Given_a_limit_below_the_minimum_When_run_Then_refused(string command)
    {
        var r = CliRunner.Run(command, "--model", "gpt2", "--hardware", "h200-1x", "--gpu-memory-limit", "11M");

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("is below 1.00 GiB", r.Console);
    }

    [Fact]
    public void Given_a_cpu_profile_When_a_limit_is_given_Then_refused_saying_it_has_no_gpu()
    {
        var r = CliRunner.Run("plan", "--model", "tiny-gpt", "--hardware", "ci-2core-24gb", "--gpu-memory-limit", "11G");

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("has no GPU", r.Console);
    }

    [Fact]
    public void Given_tune_with_a_limit_When_run_as_json_Then_the_best_fits_the_limit_and_the_document_names_it()
    {
        var r = CliRunner.Run(["tune", .. Gpt2Xl, "--budget", "40", "--json", "--gpu-memory-limit", "11G"]);

        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        var doc = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(11L << 30, doc["gpu_memory_limit_bytes"]!.GetValue<long>());
        Assert.True(doc["best"]!["gpu_peak_bytes"]!.GetValue<long>() <= 11L << 30);
    }

    [Fact]
    public void Given_whatif_with_a_limit_When_run_as_json_Then_every_cell_fits_the_limit()
    {
        var r = CliRunner.Run("whatif", "--model", "gpt2-xl", "--hardware", "h200-1x", "--no-upgrades", "--budget", "30", "--json", "--gpu-memory-limit", "11G");

        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        var doc = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(11L << 30, doc["gpu_memory_limit_bytes"]!.GetValue<long>());
        foreach (var cell in doc["cells"]!.AsArray().Where(c => c!["fits"]!.GetValue<bool>()))
            Assert.True(cell!["gpu_peak_bytes"]!.GetValue<long>() <= 11L << 30);
    }
}

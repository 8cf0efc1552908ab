using System.Text.Json.Nodes;

namespace AiOs.Planner.Cli.Tests;

/// <summary>plan shows the step's lower bounds when it offloads to NVMe, in the table and under lower_bounds in --json (issue 14 item 6).</summary>
public class PlanLowerBoundsTests
{
    private static readonly string[] Nvme = ["plan", "--model", "llama-2-7b", "--hardware", "rtx4090-64gb-pcie4", "--zero-stage", "infinity",
        "--nvme-offload-path", "/nonexistent-aios-nvme", "--grad-checkpointing", "--micro-batch", "1"];

    [Fact]
    public void Given_an_nvme_plan_When_run_Then_the_table_and_json_show_each_bound_and_the_ratio()
    {
        var table = CliRunner.Run(Nvme);
        var json = CliRunner.Run([.. Nvme, "--json"]);

        Assert.Contains("Lower bounds of the step", table.Console);
        var bounds = JsonNode.Parse(json.Stdout)!["lower_bounds"]!.AsArray();
        Assert.Equal(["compute", "pcie h2d", "pcie d2h", "nvme", "cpu adam"], bounds.Select(b => b!["resource"]!.GetValue<string>()));
        Assert.All(bounds, b => Assert.True(b!["prediction_ratio"]!.GetValue<double>() >= 1));
    }

    [Fact]
    public void Given_a_plan_without_nvme_When_run_as_json_Then_there_is_no_lower_bounds_section()
    {
        var r = CliRunner.Run("plan", "--model", "gpt2", "--hardware", "h200-1x", "--json");

        Assert.Null(JsonNode.Parse(r.Stdout)!["lower_bounds"]);
        Assert.DoesNotContain("Lower bounds", CliRunner.Run("plan", "--model", "gpt2", "--hardware", "h200-1x").Console);
    }
}

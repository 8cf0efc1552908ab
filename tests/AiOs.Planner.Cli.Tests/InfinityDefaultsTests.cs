using System.Text.Json.Nodes;

namespace AiOs.Planner.Cli.Tests;

/// <summary>The original plan's infinity: ZeRO-3 with parameters and optimizer on NVMe, a checked folder, and a CPU fallback.</summary>
public sealed class InfinityDefaultsTests : IDisposable
{
    private readonly TempDir _root = new("aios-infinity-");

    public void Dispose() => _root.Dispose();

    [Fact]
    public void Given_infinity_and_a_missing_folder_When_planned_Then_nothing_stays_on_the_gpu_and_no_folder_is_created()
    {
        string folder = _root.Combine("offload");

        var r = CliRunner.Run("plan", "--model", "llama-2-13b", "--hardware", "rtx4090-64gb-pcie4", "--zero-stage", "infinity", "--nvme-offload-path", folder, "--memory-only", "--json");
        var doc = JsonNode.Parse(r.Stdout)!;

        Assert.Equal("nvme", doc["settings"]!["param_offload"]!.GetValue<string>());
        Assert.Equal("nvme", doc["settings"]!["optimizer_offload"]!.GetValue<string>());
        Assert.Contains(doc["notes"]!.AsArray(), n => n!.GetValue<string>().Contains("does not exist yet"));
        Assert.False(Directory.Exists(folder));
    }

    [Fact]
    public void Given_infinity_alone_When_planned_Then_the_13b_model_leaves_the_gpu()
    {
        var r = CliRunner.Run("plan", "--model", "llama-2-13b", "--hardware", "rtx4090-64gb-pcie4", "--zero-stage", "infinity", "--memory-only", "--json");
        var doc = JsonNode.Parse(r.Stdout)!;

        Assert.Equal("nvme", doc["settings"]!["param_offload"]!.GetValue<string>());
        Assert.EndsWith("aios-offload", doc["settings"]!["nvme_path"]!.GetValue<string>());
    }

    [Fact]
    public void Given_an_unusable_offload_path_When_planned_Then_it_falls_back_to_cpu_and_says_why()
    {
        string file = _root.Combine("not-a-folder");
        File.WriteAllText(file, "x");

        var r = CliRunner.Run("plan", "--model", "gpt2", "--hardware", "rtx4090-64gb-pcie4", "--zero-stage", "infinity", "--nvme-offload-path", file, "--memory-only", "--json");
        var doc = JsonNode.Parse(r.Stdout)!;

        Assert.Equal("cpu", doc["settings"]!["param_offload"]!.GetValue<string>());
        Assert.Contains(doc["notes"]!.AsArray(), n => n!.GetValue<string>().Contains("Planned with CPU offload instead") && n.GetValue<string>().Contains("--nvme-offload-path"));
    }
}

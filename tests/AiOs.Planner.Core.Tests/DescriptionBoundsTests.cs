using System.Text.Json.Nodes;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Core.Tests;

/// <summary>Every numeric field of a model or profile has a range; out of it, the error names file, field, value and range.</summary>
public class DescriptionBoundsTests
{
    private static JsonNode Bundled(string kind, string name) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, kind, name + ".json")))!;

    /// <summary>Sets the value at a dotted path (numbers index arrays) to raw JSON.</summary>
    private static string With(JsonNode doc, string path, string rawValue)
    {
        string[] parts = path.Split('.');
        JsonNode node = doc;
        foreach (string part in parts[..^1])
            node = int.TryParse(part, out int i) ? node[i]! : node[part]!;
        node[parts[^1]] = JsonNode.Parse(rawValue);
        return doc.ToJsonString();
    }

    [Theory]
    [InlineData("num_layers", "1000000000", "$.num_layers", "4096")]
    [InlineData("num_layers", "0", "$.num_layers", "4096")]
    [InlineData("hidden_size", "0", "$.hidden_size", "1048576")]
    [InlineData("num_heads", "-12", "$.num_heads", "768")]
    [InlineData("vocab_size", "2147483647", "$.vocab_size", "4194304")]
    [InlineData("ffn_size", "2000000000", "$.ffn_size", "4194304")]
    [InlineData("max_seq_len", "2000000000", "$.max_seq_len", "16777216")]
    [InlineData("num_kv_heads", "24", "$.num_kv_heads", "12")]
    [InlineData("rope_theta", "1e300", "$.rope_theta", "1000000000000")]
    [InlineData("rope_theta", "-1", "$.rope_theta", "1000000000000")]
    [InlineData("norm_eps", "2", "$.norm_eps", "below 1")]
    public void Given_a_model_field_out_of_range_When_loaded_Then_the_error_names_file_field_value_and_range(string field, string value, string path, string bound)
    {
        string json = With(Bundled("models", "gpt2"), field, value);

        var e = Assert.Throws<DescriptionException>(() => ModelCatalog.Parse(json, "absurd.json"));

        Assert.Contains("absurd.json", e.Message);
        Assert.Contains(path + ":", e.Message);
        Assert.Contains(bound, e.Message);
        Assert.Equal("absurd.json", e.File);
    }

    [Fact]
    public void Given_a_billion_layers_When_loaded_Then_the_value_itself_is_named()
    {
        var e = Assert.Throws<DescriptionException>(() => ModelCatalog.Parse(With(Bundled("models", "gpt2"), "num_layers", "1000000000"), "m.json"));
        Assert.Contains("found 1000000000", e.Message);
    }

    [Theory]
    [InlineData("cpu.ram_gib", "1e10", "$.cpu.ram_gib")]
    [InlineData("cpu.ram_gib", "1e400", "$.cpu.ram_gib")]
    [InlineData("cpu.ram_gib", "{\"value\": -5, \"source\": \"measured\"}", "$.cpu.ram_gib")]
    [InlineData("gpu.memory_gib", "1e300", "$.gpu.memory_gib")]
    [InlineData("gpu.memory_bandwidth_gbps", "0", "$.gpu.memory_bandwidth_gbps")]
    [InlineData("gpu.peak_tflops.bf16", "1e30", "$.gpu.peak_tflops.bf16")]
    [InlineData("host_link.h2d_pinned_gbps", "0", "$.host_link.h2d_pinned_gbps")]
    [InlineData("host_link.gpus_per_root", "-1", "$.host_link.gpus_per_root")]
    [InlineData("host_link.lanes", "100000", "$.host_link.lanes")]
    [InlineData("cpu.cores", "0", "$.cpu.cores")]
    [InlineData("cpu.memory_bandwidth_gbps", "1e9", "$.cpu.memory_bandwidth_gbps")]
    [InlineData("cpu.adam_params_per_s", "-1", "$.cpu.adam_params_per_s")]
    [InlineData("drives.0.count", "1000000", "$.drives[0].count")]
    [InlineData("drives.0.capacity_gb", "1e300", "$.drives[0].capacity_gb")]
    [InlineData("drives.0.read.peak_gbps", "0", "$.drives[0].read.peak_gbps")]
    [InlineData("drives.0.write.half_inflight_kib", "-1", "$.drives[0].write.half_inflight_kib")]
    [InlineData("nodes", "1000000000", "$.nodes")]
    [InlineData("gpus_per_node", "-1", "$.gpus_per_node")]
    public void Given_a_profile_field_out_of_range_When_loaded_Then_the_error_names_file_field_value_and_range(string field, string value, string path)
    {
        string json = With(Bundled("profiles", "h200-1x"), field, value);

        var e = Assert.Throws<DescriptionException>(() => ProfileCatalog.Parse(json, "absurd.json"));

        Assert.Contains("absurd.json", e.Message);
        Assert.Contains(path + ":", e.Message);
        Assert.Contains("range", e.Message);
    }

    [Fact]
    public void Given_a_network_with_zero_bandwidth_and_a_latency_out_of_range_When_loaded_Then_both_are_named()
    {
        string json = With(Bundled("profiles", "dgx-2"), "network.gbps", "0");
        json = With(JsonNode.Parse(json)!, "network.latency_us", "-3");

        var e = Assert.Throws<DescriptionException>(() => ProfileCatalog.Parse(json, "net.json"));

        Assert.Contains("$.network.gbps:", e.Message);
        Assert.Contains("$.network.latency_us:", e.Message);
    }

    [Fact]
    public void Given_NaN_in_a_profile_When_loaded_Then_the_file_line_and_field_are_named()
    {
        string json = Bundled("profiles", "h200-1x").ToJsonString().Replace("\"ram_gib\":128", "\"ram_gib\":NaN", StringComparison.Ordinal);
        Assert.Contains("NaN", json);

        var e = Assert.Throws<DescriptionException>(() => ProfileCatalog.Parse(json, "nan.json"));

        Assert.Contains("nan.json", e.Message);
        Assert.Equal("$.cpu.ram_gib", e.Field);
    }

    [Fact]
    public void Given_swap_points_and_samples_out_of_range_When_loaded_Then_each_is_named()
    {
        var doc = Bundled("profiles", "h200-1x-calibrated");
        var drive = doc["drives"]![0]!;
        drive["swap"] = JsonNode.Parse("""{"points": [{"working_set_gib": -1, "read_factor": 1e9, "write_factor": 1}]}""");
        drive["read"]!["samples"] = JsonNode.Parse("""[{"block_size": 1048576, "queue_depth": 0, "threads": 1, "gbps": 1}]""");

        var e = Assert.Throws<DescriptionException>(() => ProfileCatalog.Parse(doc.ToJsonString(), "swap.json"));

        Assert.Contains("$.drives[0].swap.points[0].working_set_gib:", e.Message);
        Assert.Contains("$.drives[0].swap.points[0].read_factor:", e.Message);
        Assert.Contains("$.drives[0].read.samples[0].queue_depth:", e.Message);
    }

    [Fact]
    public void Given_a_model_at_every_upper_bound_When_planned_Then_byte_counts_stay_in_range_and_nothing_overflows()
    {
        var model = ModelCatalog.Parse(
            """
            {"name": "bounds", "vocab_size": 4194304, "hidden_size": 1048576, "num_layers": 4096, "num_heads": 1048576,
             "ffn_size": 4194304, "ffn_kind": "swiglu", "norm": "rmsnorm", "tied_embeddings": false, "positions": "learned",
             "max_seq_len": 16777216, "bias": true}
            """, "bounds.json");
        var hardware = ProfileCatalog.Default.Load("ci-2core-24gb");
        var settings = new TrainingSettings { SeqLen = 16_777_216, ActivationCheckpointing = true };

        var plan = TrainingPlanner.Plan(model, hardware, settings);

        Assert.True(model.TotalParameters > 0);
        Assert.False(plan.Feasible);
        Assert.True(plan.Memory.CpuPageable.Peak.Value > 0);
    }

    [Fact]
    public void Given_a_step_beyond_the_simulators_range_When_planned_Then_it_is_a_problem_not_an_overflow()
    {
        var model = ModelCatalog.Default.Load("gpt2") with { NumLayers = 4096, Positions = PositionKind.Rotary, MaxSeqLen = 16_777_216, TiedEmbeddings = false };
        var hardware = ProfileCatalog.Default.Load("ci-2core-24gb");

        var plan = TrainingPlanner.Plan(model, hardware, new TrainingSettings { SeqLen = 16_777_216 });

        Assert.Null(plan.Step);
        Assert.Contains(plan.CapacityProblems, p => p.Contains("--seq-len", StringComparison.Ordinal));
    }

    [Fact]
    public void Given_sub_groups_beyond_the_simulation_limit_When_checked_Then_the_size_that_fits_is_named()
    {
        var model = ModelCatalog.Default.Load("zero-infinity-100t");
        var hardware = ProfileCatalog.Default.Load("h200-1x");
        var s = new TrainingSettings { ZeroStage = ZeroStage.Infinity, OptimizerOffload = OffloadTier.Cpu, SubGroupSize = 10_000_000 };

        var problem = Assert.Single(SettingsRules.Check(s, model, hardware), p => p.Flag == "--sub-group-size");

        long least = (model.TotalParameters + SettingsRules.MaxSubGroups - 1) / SettingsRules.MaxSubGroups;
        Assert.Contains($"{least:N0}", problem.Message);
        Assert.DoesNotContain(SettingsRules.Check(s with { SubGroupSize = least }, model, hardware), p => p.Flag == "--sub-group-size");
    }

    [Fact]
    public void Given_grad_accumulation_times_layers_beyond_the_simulation_limit_When_checked_Then_the_flag_is_named()
    {
        var model = ModelCatalog.Default.Load("gpt2");
        var hardware = ProfileCatalog.Default.Load("h200-1x");

        Assert.Contains(SettingsRules.Check(new TrainingSettings { GradAccumulation = 65_536 }, model, hardware), p => p.Flag == "--grad-accumulation");
        Assert.DoesNotContain(SettingsRules.Check(new TrainingSettings { GradAccumulation = 64 }, model, hardware), p => p.Flag == "--grad-accumulation");
    }
}

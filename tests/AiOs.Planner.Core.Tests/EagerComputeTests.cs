using System.Text.Json;
using System.Text.Json.Nodes;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// A profile's <c>gpu.eager_compute</c>: PyTorch eager's constants as the machine's, read and written with their
/// provenance, used by the <c>deepspeed</c> executor (and <c>aios</c> without engine kernels) unless a model is given.
/// </summary>
public class EagerComputeTests
{
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x");
    private static readonly ModelSpec Gpt2 = ModelCatalog.Default.Load("gpt2");
    /// <summary>Profile-file options: no computed properties.</summary>
    private static readonly JsonSerializerOptions FileOptions = new(DescriptionJson.Options) { IgnoreReadOnlyProperties = true };

    /// <summary>Constants unlike the defaults in every figure.</summary>
    private static EagerCompute Section(double recomputeFloors = 1, double floorUs = 900) => new()
    {
        MatmulHalfRateHidden = Figure.Measured(320, "2026-12-05", "synthetic"),
        ElementwiseTraffic = 6.5,
        LayerOverheadUs = 110,
        LayerLaunchFloorUs = floorUs,
        RecomputeLaunchFloors = recomputeFloors,
    };

    private static HardwareProfile With(HardwareProfile hw, EagerCompute? section) => hw with { Gpu = hw.Gpu! with { EagerCompute = section } };

    private static readonly TrainingSettings DeepSpeedMb1 = new()
    {
        MicroBatch = 1, SeqLen = 1024, Precision = Precision.Bf16, GpusPerNode = 1, Executor = ExecutorKind.DeepSpeed,
    };

    [Fact]
    public void Given_a_profile_with_the_section_When_written_and_read_back_Then_every_figure_and_its_provenance_survive()
    {
        var profile = With(H200, Section(recomputeFloors: 2.5) with
        {
            LayerLaunchFloorUs = Figure.Measured(857, "2026-12-05", "aios fit-eager --baselines x.jsonl"),
        });

        string json = JsonSerializer.Serialize(profile, FileOptions);
        var back = ProfileCatalog.Parse(json, "round-trip.json");

        Assert.Contains("\"eager_compute\"", json);
        Assert.Contains("\"recompute_launch_floors\": 2.5", json);
        Assert.Equal(profile.Gpu!.EagerCompute, back.Gpu!.EagerCompute);
        Assert.Equal(FigureSource.Measured, back.Gpu.EagerCompute!.LayerLaunchFloorUs.Provenance!.Source);
    }

    [Fact]
    public void Given_a_section_without_recompute_floors_When_read_Then_it_is_one()
    {
        var node = JsonNode.Parse(JsonSerializer.Serialize(With(H200, null), FileOptions))!;
        node["gpu"]!["eager_compute"] = JsonNode.Parse("""{"matmul_half_rate_hidden": 300, "elementwise_traffic": 4, "layer_overhead_us": 150, "layer_launch_floor_us": 1000}""");

        var back = ProfileCatalog.Parse(node.ToJsonString(), "p.json");

        Assert.Equal(1, back.Gpu!.EagerCompute!.RecomputeLaunchFloors.Value);
        Assert.Equal(300, back.Gpu.EagerCompute.MatmulHalfRateHidden.Value);
    }

    [Theory]
    [InlineData(0.0, "recompute_launch_floors")]
    [InlineData(50.0, "recompute_launch_floors")]
    public void Given_recompute_floors_out_of_range_When_validated_Then_the_error_names_the_field(double floors, string field)
    {
        var e = Assert.Throws<DescriptionException>(() => With(H200, Section(floors)).Validated("bad.json"));

        Assert.Contains("$.gpu.eager_compute." + field, e.Message);
        Assert.Contains("bad.json", e.Message);
    }

    [Fact]
    public void Given_a_negative_launch_floor_When_validated_Then_the_error_names_the_field()
    {
        var e = Assert.Throws<DescriptionException>(() => With(H200, Section(floorUs: -1)).Validated("bad.json"));

        Assert.Contains("$.gpu.eager_compute.layer_launch_floor_us", e.Message);
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(8, false)]
    [InlineData(8, true)]
    public void Given_the_section_When_the_deepspeed_executor_plans_Then_it_prices_with_the_sections_constants(int microBatch, bool checkpointing)
    {
        var s = DeepSpeedMb1 with { MicroBatch = microBatch, ActivationCheckpointing = checkpointing };
        var without = With(H200, null);

        double withSection = Simulator.Predict(Gpt2, With(H200, Section(2.5)), s).Time.Seconds;

        Assert.Equal(Simulator.Predict(Gpt2, without, s, computeModel: ComputeModel.For(Section(2.5))).Time.Seconds, withSection);
        Assert.NotEqual(Simulator.Predict(Gpt2, without, s).Time.Seconds, withSection);
    }

    [Fact]
    public void Given_the_section_and_an_explicit_compute_model_When_planned_Then_the_explicit_model_wins()
    {
        double explicitDefault = Simulator.Predict(Gpt2, With(H200, Section(2.5)), DeepSpeedMb1, computeModel: ComputeModel.Default).Time.Seconds;

        Assert.Equal(Simulator.Predict(Gpt2, With(H200, null), DeepSpeedMb1).Time.Seconds, explicitDefault);
    }

    [Fact]
    public void Given_engine_kernels_When_the_aios_executor_plans_Then_the_section_is_not_used_and_without_them_it_is()
    {
        var s = DeepSpeedMb1 with { Executor = ExecutorKind.Aios };
        Assert.NotNull(H200.Gpu!.EngineKernels);

        Assert.Equal(Simulator.Predict(Gpt2, With(H200, null), s).Time.Seconds, Simulator.Predict(Gpt2, With(H200, Section()), s).Time.Seconds);

        var noKernels = H200 with { Gpu = H200.Gpu with { EngineKernels = null } };
        Assert.NotEqual(Simulator.Predict(Gpt2, With(noKernels, null), s).Time.Seconds, Simulator.Predict(Gpt2, With(noKernels, Section()), s).Time.Seconds);
    }

    [Fact]
    public void Given_a_launch_bound_checkpointed_step_When_recompute_floors_go_from_1_to_2_5_Then_the_step_grows_by_1_5_floors_per_layer()
    {
        // A 20 ms floor keeps micro-batch 1 launch-bound whatever the work: the step is its dispatch.
        const double floorUs = 20_000;
        var s = DeepSpeedMb1 with { ActivationCheckpointing = true };

        double one = Simulator.Predict(Gpt2, With(H200, Section(1, floorUs)), s).Time.Seconds;
        double more = Simulator.Predict(Gpt2, With(H200, Section(2.5, floorUs)), s).Time.Seconds;

        Assert.Equal(1.5 * floorUs * 1e-6 * Gpt2.NumLayers, more - one, 6);
    }

    [Fact]
    public void Given_no_checkpointing_When_recompute_floors_change_Then_the_step_does_not()
    {
        Assert.Equal(Simulator.Predict(Gpt2, With(H200, Section(1)), DeepSpeedMb1).Time.Seconds,
            Simulator.Predict(Gpt2, With(H200, Section(2.5)), DeepSpeedMb1).Time.Seconds);
    }

    [Fact]
    public void Given_the_default_model_Then_its_recompute_floor_is_its_forward_floor()
    {
        Assert.Equal(ComputeModel.Default.LayerLaunchFloor, ComputeModel.Default.RecomputeLaunchFloor);
        Assert.Equal(ComputeModel.Default, ComputeModel.For(null));
    }
}

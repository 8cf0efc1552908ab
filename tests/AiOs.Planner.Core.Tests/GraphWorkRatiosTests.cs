using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// Layers replayed from CUDA graphs priced at their measured work (<see cref="GraphWorkRatios"/>, <see cref="EngineKernels.GraphWork"/>):
/// the products as in an eager pass, the element-wise and overhead term times the replays' multiplier at the run's shape.
/// </summary>
public class GraphWorkRatiosTests
{
    /// <summary>A 2 × 2 grid: h 1024 and 4096 × tokens 1024 and 16384.</summary>
    private static GraphWorkRatios Grid(double scale = 1) => new()
    {
        Method = "test grid",
        Date = "2026-12-07",
        Points =
        [
            new() { Hidden = 1024, Tokens = 1024, Forward = 0.6 * scale, Backward = 0.5 * scale },
            new() { Hidden = 1024, Tokens = 16384, Forward = 1.0 * scale, Backward = 0.9 * scale },
            new() { Hidden = 4096, Tokens = 1024, Forward = 0.8 * scale, Backward = 0.7 * scale },
            new() { Hidden = 4096, Tokens = 16384, Forward = 1.2 * scale, Backward = 1.1 * scale },
        ],
    };

    private static GraphWorkRatios Uniform(double forward, double backward) => new()
    {
        Method = "uniform",
        Date = "2026-12-07",
        Points = [new() { Hidden = 768, Tokens = 1024, Forward = forward, Backward = backward }],
    };

    [Fact]
    public void Given_a_grid_When_multipliers_are_asked_at_its_points_between_them_and_outside_Then_they_are_the_point_the_log_midpoint_and_the_edge()
    {
        var grid = Grid();

        Assert.Equal((0.6, 0.5), grid.At(1024, 1024));
        Assert.Equal((1.2, 1.1), grid.At(4096, 16384));
        // Halfway in log hidden (2048) at a grid token count: the mean of the two.
        Assert.Equal(0.7, grid.At(2048, 1024).Forward, 9);
        // Halfway in both (2048, 4096): the mean of the four corners.
        Assert.Equal((0.5 + 0.9 + 0.7 + 1.1) / 4, grid.At(2048, 4096).Backward, 9);
        // Outside: held at the edge.
        Assert.Equal((0.6, 0.5), grid.At(256, 64));
        Assert.Equal((1.2, 1.1), grid.At(16384, 1 << 20));
    }

    [Fact]
    public void Given_a_grid_with_a_missing_point_a_twice_listed_shape_or_a_multiplier_out_of_range_When_validated_Then_each_is_named()
    {
        var lent = ProfileCatalog.Default.Load("h200-1x-calibrated");
        HardwareProfile With(GraphWorkRatios g) => lent with { Gpu = lent.Gpu! with { EngineKernels = lent.Gpu.EngineKernels! with { GraphWork = g } } };

        var missing = Assert.Throws<DescriptionException>(() => With(Grid() with { Points = Grid().Points.Skip(1).ToList() }).Validated("test"));
        Assert.Contains("graph_work.points", missing.Message);
        Assert.Contains("full grid", missing.Message);
        var twice = Assert.Throws<DescriptionException>(() => With(Grid() with { Points = [.. Grid().Points, Grid().Points[0]] }).Validated("test"));
        Assert.Contains("appears twice", twice.Message);
        var large = Assert.Throws<DescriptionException>(() => With(Grid(scale: 10)).Validated("test"));
        Assert.Contains("graph_work.points[3].forward", large.Message);
        var none = Assert.Throws<DescriptionException>(() => With(Grid() with { Points = [] }).Validated("test"));
        Assert.Contains("remove graph_work", none.Message);
        With(Grid()).Validated("test");
    }

    [Fact]
    public void Given_a_profile_file_with_graph_work_When_loaded_Then_the_multipliers_are_read()
    {
        string json = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "profiles", "h200-1x-calibrated.json"));
        var node = System.Text.Json.Nodes.JsonNode.Parse(json)!;
        node["gpu"]!["engine_kernels"]!["graph_work"] = System.Text.Json.Nodes.JsonNode.Parse("""
            { "method": "test", "date": "2026-12-07", "points": [
              { "hidden": 768, "tokens": 1024, "forward": 0.9, "backward": 0.8 },
              { "hidden": 1600, "tokens": 1024, "forward": 0.7, "backward": 0.6 } ] }
            """);
        string path = Path.Combine(Path.GetTempPath(), $"aios-graph-work-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, node.ToJsonString());
        try
        {
            var g = ProfileCatalog.Default.Load(path).Gpu!.EngineKernels!.GraphWork!;

            Assert.Equal((0.7, 0.6), g.At(1600, 1024));
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>gpt2-xl at micro-batch 1, floors off (the work alone; durations in whole nanoseconds), on the H200's kernels with <paramref name="graphWork"/>.</summary>
    private static (StepProgram Program, StepCosts Costs, ModelSpec Model) Priced(GraphWorkRatios? graphWork, bool cudaGraphs = true)
    {
        var lent = ProfileCatalog.Default.Load("h200-1x-calibrated");
        var hw = lent with
        {
            Gpu = lent.Gpu! with
            {
                EngineKernels = lent.Gpu.EngineKernels! with
                {
                    GraphWork = graphWork, LayerLaunchFloorUs = 0, AutogradLaunchFloorUs = 0, BackwardLaunchFloorUs = 0, GraphReplayFloorUs = 0, KindFloors = null,
                },
            },
        };
        var model = ModelCatalog.Default.Load("gpt2-xl");
        var s = new TrainingSettings { MicroBatch = 1, SeqLen = 1024, Precision = Precision.Bf16, Executor = ExecutorKind.Aios, CudaGraphs = cudaGraphs };
        var program = StepScheduler.Build(model, hw, s, false, ProgramShape.For(s, hw));
        return (program, Simulator.Costs(program, hw, s), model);
    }

    private static double Seconds(GraphWorkRatios? g, OpKind kind, UnitKind unit, bool cudaGraphs = true)
    {
        var (program, costs, model) = Priced(g, cudaGraphs);
        var op = program.Ops.First(o => o.Resource == ResourceKind.Compute && o.Kind == kind && o.Unit.Kind == unit);
        return costs.Duration(op, model.HiddenSize).Seconds;
    }

    [Theory]
    [InlineData(OpKind.Forward)]
    [InlineData(OpKind.Backward)]
    public void Given_replayed_layers_When_a_layer_pass_is_priced_Then_its_element_wise_and_overhead_term_takes_the_multiplier_and_its_products_do_not(OpKind kind)
    {
        double eager = Seconds(null, kind, UnitKind.Layer);
        double products = Seconds(Uniform(0, 0), kind, UnitKind.Layer);
        double rest = eager - products;
        Assert.True(rest > 0 && products > 0, $"products {products:E3} s, rest {rest:E3} s");

        // The multiplier of the pass's own kind alone moves it, linearly.
        double forwardHalved = Seconds(Uniform(0.5, 1), kind, UnitKind.Layer), backwardHalved = Seconds(Uniform(1, 0.5), kind, UnitKind.Layer);
        var (moved, kept) = kind == OpKind.Forward ? (forwardHalved, backwardHalved) : (backwardHalved, forwardHalved);
        Assert.Equal(products + 0.5 * rest, moved, 1e-9);
        Assert.Equal(eager, kept, 1e-9);
        Assert.Equal(eager, Seconds(Uniform(1, 1), kind, UnitKind.Layer), 1e-9);
    }

    [Fact]
    public void Given_graph_work_When_the_head_or_an_eager_run_is_priced_Then_nothing_moves()
    {
        var g = Uniform(0.2, 0.2);

        Assert.Equal(Seconds(null, OpKind.Backward, UnitKind.Head), Seconds(g, OpKind.Backward, UnitKind.Head), 1e-9);
        Assert.Equal(Seconds(null, OpKind.Forward, UnitKind.Layer, cudaGraphs: false), Seconds(g, OpKind.Forward, UnitKind.Layer, cudaGraphs: false), 1e-9);
        Assert.Equal(Seconds(null, OpKind.Backward, UnitKind.Layer, cudaGraphs: false), Seconds(g, OpKind.Backward, UnitKind.Layer, cudaGraphs: false), 1e-9);
    }

    [Fact]
    public void Given_graph_work_measured_on_another_layer_kind_When_a_replayed_layer_is_priced_Then_it_is_priced_as_eager()
    {
        var llama = Uniform(0.2, 0.2) with { Kind = EngineLayerKind.Of(ModelCatalog.Default.Load("llama-2-7b")) };
        var gpt2 = Uniform(0.2, 0.2) with { Kind = EngineLayerKind.Of(ModelCatalog.Default.Load("gpt2")) };

        Assert.False(llama.Prices(ModelCatalog.Default.Load("gpt2-xl")));
        Assert.True(gpt2.Prices(ModelCatalog.Default.Load("gpt2-xl")));
        Assert.Equal(Seconds(null, OpKind.Forward, UnitKind.Layer), Seconds(llama, OpKind.Forward, UnitKind.Layer), 1e-9);
        Assert.True(Seconds(gpt2, OpKind.Forward, UnitKind.Layer) < Seconds(null, OpKind.Forward, UnitKind.Layer));
    }

    [Fact]
    public void Given_a_replayed_plan_on_a_profile_without_measured_replays_for_its_kind_When_noted_Then_it_says_so_and_names_the_command()
    {
        var lent = ProfileCatalog.Default.Load("h100-1x-vm");
        HardwareProfile With(GraphWorkRatios? g) => lent with { Gpu = lent.Gpu! with { EngineKernels = lent.Gpu.EngineKernels! with { GraphWork = g } } };
        var gpt2 = ModelCatalog.Default.Load("gpt2-xl");
        var llama = ModelCatalog.Default.Load("llama-3.2-3b");
        var s = new TrainingSettings { MicroBatch = 1, SeqLen = 1024, Precision = Precision.Bf16, Executor = ExecutorKind.Aios, CudaGraphs = true };

        string none = TrainingPlanner.GraphWorkNote(gpt2, With(null), s)!;
        Assert.Contains("no measured replays", none);
        Assert.Contains("aios calibrate-gpu", none);
        Assert.Null(TrainingPlanner.GraphWorkNote(gpt2, With(null), s with { CudaGraphs = false }));
        Assert.Null(TrainingPlanner.GraphWorkNote(gpt2, With(Uniform(0.5, 0.5)), s));
        string other = TrainingPlanner.GraphWorkNote(llama, With(Uniform(0.5, 0.5)), s)!;
        Assert.Contains("another layer kind", other);
        Assert.Contains("--family llama-3.2-3b", other);
    }
}

using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// Layers replayed from CUDA graphs priced at their measured work (<see cref="GraphWork"/>, <see cref="EngineKernels.GraphWork"/>):
/// the products as in an eager pass (a backward's twice the forward's), plus the replays' time beyond them per GB of the forward's
/// saved bytes at the run's shape, with nothing of the eager fit's element-wise rate or fixed term.
/// </summary>
public class GraphWorkTests
{
    /// <summary>A 2 × 2 grid, ms/GB: h 1024 and 4096 × tokens 1024 and 16384.</summary>
    private static GraphWork Grid(double scale = 1) => new()
    {
        Method = "test grid",
        Date = "2026-12-07",
        Points =
        [
            new() { Hidden = 1024, Tokens = 1024, ForwardMsPerGb = 0.6 * scale, BackwardMsPerGb = 0.5 * scale },
            new() { Hidden = 1024, Tokens = 16384, ForwardMsPerGb = 1.0 * scale, BackwardMsPerGb = 0.9 * scale },
            new() { Hidden = 4096, Tokens = 1024, ForwardMsPerGb = 0.8 * scale, BackwardMsPerGb = 0.7 * scale },
            new() { Hidden = 4096, Tokens = 16384, ForwardMsPerGb = 1.2 * scale, BackwardMsPerGb = 1.1 * scale },
        ],
    };

    private static GraphWork Uniform(double forwardMsPerGb, double backwardMsPerGb) => new()
    {
        Method = "uniform",
        Date = "2026-12-07",
        Points = [new() { Hidden = 768, Tokens = 1024, ForwardMsPerGb = forwardMsPerGb, BackwardMsPerGb = backwardMsPerGb }],
    };

    [Fact]
    public void Given_a_grid_When_values_are_asked_at_its_points_between_them_and_outside_Then_they_are_the_point_the_log_midpoint_and_the_edge()
    {
        var grid = Grid();

        Assert.Equal((0.6, 0.5), grid.At(1024, 1024));
        Assert.Equal((1.2, 1.1), grid.At(4096, 16384));
        // Halfway in log hidden (2048) at a grid token count: the mean of the two.
        Assert.Equal(0.7, grid.At(2048, 1024).ForwardMsPerGb, 9);
        // Halfway in both (2048, 4096): the mean of the four corners.
        Assert.Equal((0.5 + 0.9 + 0.7 + 1.1) / 4, grid.At(2048, 4096).BackwardMsPerGb, 9);
        // Outside: held at the edge.
        Assert.Equal((0.6, 0.5), grid.At(256, 64));
        Assert.Equal((1.2, 1.1), grid.At(16384, 1 << 20));
    }

    [Fact]
    public void Given_a_grid_with_a_missing_point_a_twice_listed_shape_or_a_value_out_of_range_When_validated_Then_each_is_named()
    {
        var lent = ProfileCatalog.Default.Load("h200-1x-calibrated");
        HardwareProfile With(GraphWork g) => lent with { Gpu = lent.Gpu! with { EngineKernels = lent.Gpu.EngineKernels! with { GraphWork = g } } };

        var missing = Assert.Throws<DescriptionException>(() => With(Grid() with { Points = Grid().Points.Skip(1).ToList() }).Validated("test"));
        Assert.Contains("graph_work.points", missing.Message);
        Assert.Contains("full grid", missing.Message);
        var twice = Assert.Throws<DescriptionException>(() => With(Grid() with { Points = [.. Grid().Points, Grid().Points[0]] }).Validated("test"));
        Assert.Contains("appears twice", twice.Message);
        // × 1000: the last point's 1,200 and 1,100 ms/GB are above the bound, the others at or below it.
        var large = Assert.Throws<DescriptionException>(() => With(Grid(scale: GraphWork.MaxMsPerGb)).Validated("test"));
        Assert.Contains("graph_work.points[3].forward_ms_per_gb", large.Message);
        Assert.Contains("graph_work.points[3].backward_ms_per_gb", large.Message);
        Assert.DoesNotContain("graph_work.points[1]", large.Message);
        var negative = Assert.Throws<DescriptionException>(() => With(Grid(scale: -1)).Validated("test"));
        Assert.Contains("graph_work.points[0].backward_ms_per_gb", negative.Message);
        var none = Assert.Throws<DescriptionException>(() => With(Grid() with { Points = [] }).Validated("test"));
        Assert.Contains("remove graph_work", none.Message);
        With(Grid()).Validated("test");
    }

    /// <summary>h200-1x-calibrated.json with <paramref name="graphWork"/> as its <c>engine_kernels.graph_work</c>, loaded from a file.</summary>
    private static HardwareProfile LoadedWith(string graphWork)
    {
        string json = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "profiles", "h200-1x-calibrated.json"));
        var node = System.Text.Json.Nodes.JsonNode.Parse(json)!;
        node["gpu"]!["engine_kernels"]!["graph_work"] = System.Text.Json.Nodes.JsonNode.Parse(graphWork);
        string path = Path.Combine(Path.GetTempPath(), $"aios-graph-work-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, node.ToJsonString());
        try
        {
            return ProfileCatalog.Default.Load(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Given_a_profile_file_with_graph_work_When_loaded_Then_the_values_are_read_and_the_old_multipliers_are_refused()
    {
        var g = LoadedWith("""
            { "method": "test", "date": "2026-12-07", "points": [
              { "hidden": 768, "tokens": 1024, "forward_ms_per_gb": 0.9, "backward_ms_per_gb": 0.8 },
              { "hidden": 1600, "tokens": 1024, "forward_ms_per_gb": 0.7, "backward_ms_per_gb": 0.6 } ] }
            """).Gpu!.EngineKernels!.GraphWork!;

        Assert.Equal((0.7, 0.6), g.At(1600, 1024));
        // The multipliers of the fit's element-wise and overhead term, as first written: another quantity, not read as this one.
        var old = Assert.Throws<DescriptionException>(() => LoadedWith("""
            { "method": "test", "date": "2026-12-07", "points": [ { "hidden": 768, "tokens": 1024, "forward": 0.9, "backward": 0.8 } ] }
            """));
        Assert.Contains("graph_work.points[0].forward:", old.Message);
    }

    /// <summary>
    /// gpt2-xl at micro-batch 1, floors off (the work alone; durations in whole nanoseconds), on the H200's kernels with
    /// <paramref name="graphWork"/>, and the eager fit's fixed term and element-wise rate as given.
    /// </summary>
    private static (StepProgram Program, StepCosts Costs, ModelSpec Model, HardwareProfile Hardware) Priced(GraphWork? graphWork, bool cudaGraphs = true,
        double? overheadUs = null, double? savedBytesGbps = null)
    {
        var lent = ProfileCatalog.Default.Load("h200-1x-calibrated");
        var kernels = lent.Gpu!.EngineKernels!;
        var hw = lent with
        {
            Gpu = lent.Gpu! with
            {
                EngineKernels = kernels with
                {
                    GraphWork = graphWork, LayerLaunchFloorUs = 0, AutogradLaunchFloorUs = 0, BackwardLaunchFloorUs = 0, GraphReplayFloorUs = 0, KindFloors = null,
                    LayerOverheadUs = overheadUs ?? kernels.LayerOverheadUs, SavedBytesGbps = savedBytesGbps ?? kernels.SavedBytesGbps,
                },
            },
        };
        var model = ModelCatalog.Default.Load("gpt2-xl");
        var s = new TrainingSettings { MicroBatch = 1, SeqLen = 1024, Precision = Precision.Bf16, Executor = ExecutorKind.Aios, CudaGraphs = cudaGraphs };
        var program = StepScheduler.Build(model, hw, s, false, ProgramShape.For(s, hw));
        return (program, Simulator.Costs(program, hw, s), model, hw);
    }

    private static Operation Pass(StepProgram program, OpKind kind, UnitKind unit) =>
        program.Ops.First(o => o.Resource == ResourceKind.Compute && o.Kind == kind && o.Unit.Kind == unit);

    private static double Seconds(GraphWork? g, OpKind kind, UnitKind unit, bool cudaGraphs = true, double? overheadUs = null, double? savedBytesGbps = null)
    {
        var (program, costs, model, _) = Priced(g, cudaGraphs, overheadUs, savedBytesGbps);
        return costs.Duration(Pass(program, kind, unit), model.HiddenSize).Seconds;
    }

    [Fact]
    public void Given_replayed_layers_When_a_layer_pass_is_priced_Then_it_is_its_products_plus_its_own_value_times_the_forwards_saved_gigabytes()
    {
        var (program, _, _, hw) = Priced(null);
        var (forward, backward) = (Pass(program, OpKind.Forward, UnitKind.Layer), Pass(program, OpKind.Backward, UnitKind.Layer));
        // The forward's saved bytes: a backward op carries twice them.
        double savedGb = forward.ElementwiseBytes / 1e9;
        Assert.Equal(savedGb, backward.ElementwiseBytes / 2 / 1e9, 12);
        // The resident landing of the layer's gradients, priced apart beside the backward's work.
        double landing = backward.SumBytes / (hw.Gpu!.EngineKernels!.OptimizerGbps!.Value * 1e9);

        // At 0 ms/GB a replayed pass is its products alone: the backward's twice the forward's.
        double products = Seconds(Uniform(0, 0), OpKind.Forward, UnitKind.Layer);
        Assert.True(products > 0 && products < Seconds(null, OpKind.Forward, UnitKind.Layer), $"products {products:E3} s");
        Assert.Equal(2 * products + landing, Seconds(Uniform(0, 0), OpKind.Backward, UnitKind.Layer), 1e-8);

        // Each pass's own value alone moves it, linearly in the forward's saved bytes (ms/GB × GB / 1e3 s).
        Assert.Equal(products + 0.5 * savedGb / 1e3, Seconds(Uniform(0.5, 7), OpKind.Forward, UnitKind.Layer), 1e-8);
        Assert.Equal(2 * products + 0.7 * savedGb / 1e3 + landing, Seconds(Uniform(3, 0.7), OpKind.Backward, UnitKind.Layer), 1e-8);
    }

    [Fact]
    public void Given_two_profiles_of_one_gpu_whose_eager_fits_differ_in_fixed_term_and_element_wise_rate_When_a_replayed_layer_is_priced_Then_its_price_is_the_same_and_the_eager_one_is_not()
    {
        // The bundled H100 profile's fixed term and one H100 VM's calibration's (2026-12-07), with one graph_work copied into both.
        var g = Uniform(0.3, 0.5);
        (double Bundled, double Vm) Both(OpKind kind, bool cudaGraphs) =>
            (Seconds(g, kind, UnitKind.Layer, cudaGraphs, overheadUs: 104.7, savedBytesGbps: 3160),
             Seconds(g, kind, UnitKind.Layer, cudaGraphs, overheadUs: 187.5, savedBytesGbps: 2400));

        foreach (var kind in new[] { OpKind.Forward, OpKind.Backward })
        {
            var replayed = Both(kind, cudaGraphs: true);
            Assert.Equal(replayed.Bundled, replayed.Vm, 1e-9);
            var eager = Both(kind, cudaGraphs: false);
            Assert.True(eager.Vm > eager.Bundled + 80e-6, $"{kind}: eager {eager.Vm:E4} s against {eager.Bundled:E4} s");
        }
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
        HardwareProfile With(GraphWork? g) => lent with { Gpu = lent.Gpu! with { EngineKernels = lent.Gpu.EngineKernels! with { GraphWork = g } } };
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

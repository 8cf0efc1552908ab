using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The engine's layer products priced at their measured rate for the layer's shape and precision
/// (<see cref="LayerMatmulRates"/>, <see cref="EngineKernels.LayerMatmul"/>) instead of one large-matmul rate.
/// </summary>
public class LayerMatmulRatesTests
{
    /// <summary>A 2 × 2 grid: h 1024 and 4096 × tokens 1024 and 16384; bf16 and fp32 rates that rise with both.</summary>
    private static LayerMatmulRates Grid(double fp32Scale = 1) => new()
    {
        Method = "test grid",
        Date = "2026-12-07",
        Points =
        [
            new() { Hidden = 1024, Tokens = 1024, Bf16Tflops = 300, Fp32Tflops = 30 * fp32Scale },
            new() { Hidden = 1024, Tokens = 16384, Bf16Tflops = 600, Fp32Tflops = 40 * fp32Scale },
            new() { Hidden = 4096, Tokens = 1024, Bf16Tflops = 500, Fp32Tflops = 45 * fp32Scale },
            new() { Hidden = 4096, Tokens = 16384, Bf16Tflops = 750, Fp32Tflops = 50 * fp32Scale },
        ],
    };

    [Fact]
    public void Given_a_grid_When_a_rate_is_asked_at_its_points_between_them_and_outside_Then_it_is_the_point_the_log_midpoint_and_the_edge()
    {
        var grid = Grid();

        Assert.Equal(30, grid.RateAt(Precision.Fp32, 1024, 1024)!.Value.Tflops, 9);
        Assert.Equal(750, grid.RateAt(Precision.Bf16, 4096, 16384)!.Value.Tflops, 9);
        // fp16 reads bf16's column, as the large-matmul figure does.
        Assert.Equal(600, grid.RateAt(Precision.Fp16, 1024, 16384)!.Value.Tflops, 9);
        // Halfway in log hidden (2048 between 1024 and 4096) at a grid token count: the geometric mean.
        Assert.Equal(Math.Sqrt(30.0 * 45), grid.RateAt(Precision.Fp32, 2048, 1024)!.Value.Tflops, 9);
        // Halfway in both: the geometric mean of the four corners.
        Assert.Equal(Math.Pow(30.0 * 40 * 45 * 50, 0.25), grid.RateAt(Precision.Fp32, 2048, 4096)!.Value.Tflops, 9);
        // Outside the grid: held at its edge.
        Assert.Equal(30, grid.RateAt(Precision.Fp32, 256, 64)!.Value.Tflops, 9);
        Assert.Equal(750, grid.RateAt(Precision.Bf16, 16384, 1 << 20)!.Value.Tflops, 9);
    }

    [Fact]
    public void Given_a_grid_without_a_precisions_column_When_that_precision_is_asked_Then_there_is_no_rate()
    {
        var grid = Grid() with { Points = Grid().Points.Select(p => p with { Fp32Tflops = null }).ToList() };

        Assert.Null(grid.RateAt(Precision.Fp32, 1024, 1024));
        Assert.NotNull(grid.RateAt(Precision.Bf16, 1024, 1024));
    }

    [Fact]
    public void Given_a_grid_with_a_missing_point_or_a_twice_listed_shape_When_the_profile_is_validated_Then_each_is_named_with_its_fix()
    {
        var lent = ProfileCatalog.Default.Load("h200-1x-calibrated");
        HardwareProfile With(LayerMatmulRates rates) => lent with { Gpu = lent.Gpu! with { EngineKernels = lent.Gpu.EngineKernels! with { LayerMatmul = rates } } };

        var missing = Assert.Throws<DescriptionException>(() => With(Grid() with { Points = Grid().Points.Skip(1).ToList() }).Validated("test"));
        Assert.Contains("layer_matmul.points", missing.Message);
        Assert.Contains("full grid", missing.Message);
        var twice = Assert.Throws<DescriptionException>(() => With(Grid() with { Points = [.. Grid().Points, Grid().Points[0]] }).Validated("test"));
        Assert.Contains("appears twice", twice.Message);
        var negative = Assert.Throws<DescriptionException>(() => With(Grid(fp32Scale: -1)).Validated("test"));
        Assert.Contains("fp32_tflops", negative.Message);
        // One precision's column alone would price the other at an efficiency that does not refer to its rate.
        var oneColumn = Assert.Throws<DescriptionException>(() => With(Grid() with { Points = Grid().Points.Select(p => p with { Fp32Tflops = null }).ToList() }).Validated("test"));
        Assert.Contains("needs both bf16_tflops and fp32_tflops", oneColumn.Message);
        With(Grid()).Validated("test");
    }

    [Fact]
    public void Given_a_profile_file_with_layer_matmul_rates_When_loaded_Then_the_rates_price_its_layers()
    {
        string json = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "profiles", "h200-1x-calibrated.json"));
        var node = System.Text.Json.Nodes.JsonNode.Parse(json)!;
        node["gpu"]!["engine_kernels"]!["layer_matmul"] = System.Text.Json.Nodes.JsonNode.Parse("""
            { "method": "test", "date": "2026-12-07", "points": [
              { "hidden": 768, "tokens": 2048, "bf16_tflops": 400, "fp32_tflops": 20 },
              { "hidden": 1600, "tokens": 2048, "bf16_tflops": 600, "fp32_tflops": 40 } ] }
            """);
        string path = Path.Combine(Path.GetTempPath(), $"aios-layer-matmul-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, node.ToJsonString());
        try
        {
            var hw = ProfileCatalog.Default.Load(path);

            var rates = hw.Gpu!.EngineKernels!.LayerMatmul!;
            Assert.Equal(2, rates.Points.Count);
            Assert.Equal(40, rates.RateAt(Precision.Fp32, 1600, 2048)!.Value.Tflops, 9);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>A layer forward's work, floors off, resident; <paramref name="rates"/> on the kernels or none.</summary>
    private static (double Layer, double Head) Forward(LayerMatmulRates? rates, Precision precision, int microBatch = 2, double? largeEfficiency = null)
    {
        var lent = ProfileCatalog.Default.Load("h200-1x-calibrated");
        var hw = lent with
        {
            Gpu = lent.Gpu! with
            {
                EngineKernels = lent.Gpu.EngineKernels! with
                {
                    LayerMatmul = rates, MatmulEfficiency = 1, LargeMatmulEfficiency = largeEfficiency is { } e ? e : null, SavedBytesGbps = 0, LayerOverheadUs = 0,
                    LayerLaunchFloorUs = 0, AutogradLaunchFloorUs = 0, BackwardLaunchFloorUs = 0, KindFloors = null,
                },
            },
        };
        var model = ModelCatalog.Default.Load("gpt2-xl");
        var s = new TrainingSettings { MicroBatch = microBatch, SeqLen = 1024, Precision = precision, Executor = ExecutorKind.Aios };
        var program = StepScheduler.Build(model, hw, s, false, ProgramShape.Engine);
        var costs = Simulator.Costs(program, hw, s);
        var layer = program.Ops.First(o => o.Kind == OpKind.Forward && o.Unit.Kind == UnitKind.Layer);
        var head = program.Ops.Last(o => o.Kind == OpKind.Forward);
        return (costs.Duration(layer, model.HiddenSize).Seconds / layer.Flops, costs.Duration(head, model.HiddenSize).Seconds / head.Flops);
    }

    [Fact]
    public void Given_layer_rates_When_a_layer_forward_is_priced_Then_its_products_take_the_rate_at_its_shape_and_precision_and_the_head_the_large_rate_at_its_own_efficiency()
    {
        var lent = ProfileCatalog.Default.Load("h200-1x-calibrated");
        double large32 = lent.Gpu!.MatmulRate(Precision.Fp32).FlopsPerSecond;
        // gpt2-xl (h 1600) at micro-batch 2 (2,048 tokens): inside the grid, interpolated.
        double expected = Grid().RateAt(Precision.Fp32, 1600, 2048)!.Value.FlopsPerSecond;

        var (layer, head) = Forward(Grid(), Precision.Fp32);
        var (plainLayer, plainHead) = Forward(null, Precision.Fp32);

        Assert.Equal(1 / expected, layer, 1e-5 / expected);
        Assert.Equal(1 / large32, plainLayer, 1e-5 / large32);
        Assert.Equal(plainHead, head, plainHead * 1e-5);
        // A larger micro-batch reaches a higher rate on this grid: less time per FLOP.
        Assert.True(Forward(Grid(), Precision.Fp32, microBatch: 8).Layer < layer);
        // The head is priced at the large rate and the efficiency the layers reach against it where the fit gave one.
        Assert.Equal(2 * plainHead, Forward(Grid(), Precision.Fp32, largeEfficiency: 0.5).Head, plainHead * 1e-5);
        Assert.Equal(layer, Forward(Grid(), Precision.Fp32, largeEfficiency: 0.5).Layer, layer * 1e-5);
        // bf16 reads its own column.
        double bf16Rate = Grid().RateAt(Precision.Bf16, 1600, 2048)!.Value.FlopsPerSecond;
        Assert.Equal(1 / bf16Rate, Forward(Grid(), Precision.Bf16).Layer, 1e-5 / bf16Rate);
    }
}

/// <summary>
/// A layer kind's difference from the main fit put on its element-wise work alone (<see cref="LayerKindFloors.ForwardElementwiseRatio"/>):
/// an fp32 layer, nearly all matmul, is not scaled by a ratio measured in bf16 where element-wise work weighs half.
/// </summary>
public class KindElementwiseRatioTests
{
    private static readonly ModelSpec Llama = ModelCatalog.Default.Load("llama-2-7b");

    /// <summary>A llama-2-7b layer forward, floors off, resident, priced with its kind's whole ratio 1.5 and, optionally, an element-wise ratio.</summary>
    private static double Forward(Precision precision, double? restRatio) => Priced(precision, restRatio, OpKind.Forward);

    /// <summary>
    /// A llama-2-7b layer pass of <paramref name="pass"/> (checkpointed, so recomputes exist), floors off, resident; with
    /// <paramref name="noWorkRatio"/> the kernels have no backward_work_ratio (older profiles: backward_ratio × the whole).
    /// </summary>
    private static double Priced(Precision precision, double? restRatio, OpKind pass, bool noWorkRatio = false)
    {
        var lent = ProfileCatalog.Default.Load("h200-1x-calibrated");
        string kind = EngineLayerKind.Of(Llama);
        var k = lent.Gpu!.EngineKernels! with
        {
            LayerLaunchFloorUs = 0, AutogradLaunchFloorUs = 0, BackwardLaunchFloorUs = 0,
            KindFloors = [new LayerKindFloors { Kind = kind, ForwardUs = 0, AutogradUs = 0, BackwardUs = 0, ForwardWorkRatio = 1.5, BackwardWorkRatio = 1.5,
                ForwardElementwiseRatio = restRatio is { } r ? r : null, BackwardElementwiseRatio = restRatio is { } b ? b : null }],
        };
        if (noWorkRatio) k = k with { BackwardWorkRatio = null };
        var hw = lent with { Gpu = lent.Gpu with { EngineKernels = k } };
        var s = new TrainingSettings { MicroBatch = 2, SeqLen = 1024, Precision = precision, Executor = ExecutorKind.Aios, ActivationCheckpointing = true };
        var program = StepScheduler.Build(Llama, hw, s, false, ProgramShape.Engine);
        var op = program.Ops.First(o => o.Kind == pass && o.Unit.Kind == UnitKind.Layer);
        // The gradients' landing beside a backward is a streaming pass apart from the layer's work: the same in every case here.
        return Simulator.Costs(program, hw, s).Duration(op, Llama.HiddenSize).Seconds;
    }

    [Fact]
    public void Given_an_elementwise_ratio_When_a_backward_and_a_recompute_are_priced_Then_each_takes_it_on_the_forwards_element_wise_term_times_its_own_ratio()
    {
        var k = ProfileCatalog.Default.Load("h200-1x-calibrated").Gpu!.EngineKernels!;
        // The forward's element-wise term grows by (2 − 1) × E; a backward's by its work ratio (or, without one, the whole
        // backward ratio) times that, a recompute's by the recompute ratio times it.
        double extra = Priced(Precision.Bf16, 2, OpKind.Forward) - Priced(Precision.Bf16, 1, OpKind.Forward);
        Assert.True(extra > 0);
        Assert.Equal(k.BackwardWorkRatio!.Value * extra, Priced(Precision.Bf16, 2, OpKind.Backward) - Priced(Precision.Bf16, 1, OpKind.Backward), extra * 1e-3);
        Assert.Equal(k.BackwardRatio.Value * extra,
            Priced(Precision.Bf16, 2, OpKind.Backward, noWorkRatio: true) - Priced(Precision.Bf16, 1, OpKind.Backward, noWorkRatio: true), extra * 1e-3);
        Assert.Equal(k.RecomputeRatio.Value * extra, Priced(Precision.Bf16, 2, OpKind.Recompute) - Priced(Precision.Bf16, 1, OpKind.Recompute), extra * 1e-3);
    }

    [Fact]
    public void Given_an_elementwise_ratio_When_a_layer_is_priced_Then_only_that_work_takes_it_and_fp32_moves_less_than_bf16()
    {
        foreach (var precision in new[] { Precision.Bf16, Precision.Fp32 })
        {
            double whole = Forward(precision, null), rest = Forward(precision, 1.5), main = Forward(precision, 1.0);
            // Ratio 1 leaves the main kind's price (the whole ratio is not used beside it); 1.5 on the element-wise work adds less than 1.5 on all.
            Assert.True(main < rest && rest < whole, $"{precision}: main {main}, rest {rest}, whole {whole}");
            Assert.Equal(whole / 1.5, main, main * 1e-4);
        }
        // fp32's layer is more matmul, so the element-wise ratio adds a smaller share of it than bf16's.
        Assert.True(Forward(Precision.Fp32, 1.5) / Forward(Precision.Fp32, 1.0) < Forward(Precision.Bf16, 1.5) / Forward(Precision.Bf16, 1.0));
    }
}

/// <summary>The plan says when an fp32 run is priced without the layer products' fp32 rates or with bf16-measured whole kind ratios.</summary>
public class EngineMatmulNoteTests
{
    private static readonly TrainingSettings Fp32 = new() { MicroBatch = 2, SeqLen = 1024, Precision = Precision.Fp32, Executor = ExecutorKind.Aios };

    [Fact]
    public void Given_kernels_without_shape_rates_When_an_fp32_run_is_planned_Then_the_note_names_the_large_rate_and_the_command()
    {
        // The bundled H200 profile without its (transferred) table of shape rates.
        var bundled = ProfileCatalog.Default.Load("h200-1x-calibrated");
        var h200 = bundled with { Gpu = bundled.Gpu! with { EngineKernels = bundled.Gpu!.EngineKernels! with { LayerMatmul = null } } };
        Assert.Null(h200.Gpu!.EngineKernels!.LayerMatmul);
        var gpt2 = ModelCatalog.Default.Load("gpt2-xl");

        var notes = TrainingPlanner.Plan(gpt2, h200, Fp32).Notes;

        Assert.Contains(notes, n => n.Contains("large-matmul fp32 rate") && n.Contains("aios calibrate-gpu"));
        // bf16, the fit's precision, needs no note; neither does the deepspeed executor.
        Assert.DoesNotContain(TrainingPlanner.Plan(gpt2, h200, Fp32 with { Precision = Precision.Bf16 }).Notes, n => n.Contains("large-matmul fp32 rate"));
        Assert.DoesNotContain(TrainingPlanner.Plan(gpt2, h200, Fp32 with { Executor = ExecutorKind.DeepSpeed }).Notes, n => n.Contains("large-matmul fp32 rate"));
    }

    [Fact]
    public void Given_the_bundled_h100_profile_with_shape_rates_and_elementwise_ratios_When_fp32_runs_are_planned_Then_no_note_is_given_and_whole_ratios_alone_are_named()
    {
        var vm = ProfileCatalog.Default.Load("h100-1x-vm");
        var llama = ModelCatalog.Default.Load("llama-2-7b");

        Assert.DoesNotContain(TrainingPlanner.Plan(llama, vm, Fp32).Notes, n => n.StartsWith("fp32 on", StringComparison.Ordinal));
        // The same kernels with the kind's element-wise ratios taken out: its whole ratios are named.
        var k = vm.Gpu!.EngineKernels!;
        var whole = vm with { Gpu = vm.Gpu with { EngineKernels = k with { KindFloors = k.KindFloors!.Select(f => f with { ForwardElementwiseRatio = null, BackwardElementwiseRatio = null }).ToList() } } };
        Assert.Contains(TrainingPlanner.Plan(llama, whole, Fp32).Notes, n => n.Contains("whole work ratios") && n.Contains("--floor-families llama-2-7b"));
    }
}

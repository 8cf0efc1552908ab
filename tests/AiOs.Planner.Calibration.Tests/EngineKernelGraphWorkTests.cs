using AiOs.Planner.Calibration.Compute;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Tests;

/// <summary>
/// The layer's passes replayed from CUDA graphs (<c>aios calibrate-gpu</c> on CUDA) turned into <see cref="EngineKernels.GraphWork"/>:
/// per shape, each replay's time beyond the fit's products (a backward's twice the forward's), ms per GB of the forward's saved bytes.
/// </summary>
public class EngineKernelGraphWorkTests
{
    private static readonly FlopRate Large = FlopRate.FromTflops(800);
    private const double Efficiency = 0.8, SavedGbps = 900, OverheadUs = 40, WorkRatio = 2.5;

    private static readonly int[] Hidden = [768, 1600, 2048];
    private static readonly long[] Tokens = [1024, 4096, 16384];

    private static (double Flops, double Saved, double Products, double Remainder) Shape(int h, long tokens, double overheadUs = OverheadUs, double savedGbps = SavedGbps)
    {
        double flops = 2.0 * tokens * 12 * h * h, saved = 40.0 * h * tokens;
        return (flops, saved, flops / (Large.FlopsPerSecond * Efficiency), saved / (savedGbps * 1e9) + overheadUs * 1e-6);
    }

    /// <summary>The replays' time beyond their products, ms/GB, at each shape: larger at more tokens and widths.</summary>
    private static (double Forward, double Backward) Truth(int h, long tokens) => (0.3 + 0.05 * Math.Log2(tokens / 1024.0) + h / 20480.0, 0.6 + 0.08 * Math.Log2(tokens / 1024.0));

    /// <summary>
    /// Eager passes from the constants above (backward = 2 × products + 2.5 × rest), with the fixed term and element-wise rate
    /// given, and, with <paramref name="replayed"/>, replays at <see cref="Truth"/> beyond their products (backward: 2 × products).
    /// </summary>
    private static EngineKernelTimings Timings(bool replayed, Func<int, long, (double, double)>? truth = null, double overheadUs = OverheadUs, double savedGbps = SavedGbps)
    {
        var passes = new List<LayerTiming>();
        var replays = new List<LayerTiming>();
        foreach (int h in Hidden)
            foreach (long t in Tokens)
            {
                var (flops, saved, products, rest) = Shape(h, t, overheadUs, savedGbps);
                passes.Add(new LayerTiming(flops, saved, h, false, products + rest, "forward", t));
                passes.Add(new LayerTiming(flops, saved, h, false, 1.05 * (products + rest), "recompute", t));
                passes.Add(new LayerTiming(flops, saved, h, true, 2 * products + WorkRatio * rest, "backward", t));
                var (gf, gb) = (truth ?? Truth)(h, t);
                replays.Add(new LayerTiming(flops, saved, h, false, products + gf * saved / 1e12, "forward", t));
                replays.Add(new LayerTiming(flops, saved, h, true, 2 * products + gb * saved / 1e12, "backward", t));
            }
        return new EngineKernelTimings(passes, FloorSeconds: 20e-6, OptimizerSeconds: 1e-3, OptimizerElements: 100_000_000, Large, "synthetic",
            Replayed: replayed ? replays : null);
    }

    [Fact]
    public void Given_replays_at_every_shape_When_fitted_Then_each_shapes_values_are_recovered()
    {
        var fit = EngineKernelFit.Fit(Timings(replayed: true), "2026-12-07");

        var g = fit.Kernels.GraphWork!;
        Assert.Equal(Efficiency, fit.Kernels.MatmulEfficiency.Value, 3);
        Assert.Equal(WorkRatio, fit.Kernels.BackwardWorkRatio!.Value, 3);
        Assert.Equal(Hidden.Length * Tokens.Length, g.Points.Count);
        foreach (var p in g.Points)
        {
            var (f, b) = Truth(p.Hidden, p.Tokens);
            Assert.Equal(f, p.ForwardMsPerGb, 1e-3);
            Assert.Equal(b, p.BackwardMsPerGb, 1e-3);
        }
        Assert.Contains("CUDA graphs", g.Method);
        Assert.Contains("per GB", g.Method);
    }

    [Fact]
    public void Given_the_same_replays_beside_eager_passes_with_another_fixed_term_and_element_wise_rate_When_fitted_Then_the_values_are_the_same()
    {
        // Another VM of the same GPU: its eager passes carry more host time and run their element-wise work slower; its replays,
        // the device's work alone, do not move.
        var here = EngineKernelFit.Fit(Timings(replayed: true), "2026-12-07").Kernels;
        var there = EngineKernelFit.Fit(Timings(replayed: true, overheadUs: 187.5, savedGbps: 600), "2026-12-07").Kernels;

        Assert.Equal(OverheadUs, here.LayerOverheadUs.Value, 1);
        Assert.Equal(187.5, there.LayerOverheadUs.Value, 1);
        foreach (var (a, b) in here.GraphWork!.Points.Zip(there.GraphWork!.Points))
        {
            Assert.Equal((a.Hidden, a.Tokens), (b.Hidden, b.Tokens));
            Assert.Equal(a.ForwardMsPerGb, b.ForwardMsPerGb, 1e-3);
            Assert.Equal(a.BackwardMsPerGb, b.BackwardMsPerGb, 1e-3);
        }
    }

    [Fact]
    public void Given_no_replays_a_shape_without_its_backward_or_without_saved_bytes_When_fitted_Then_there_is_no_graph_work()
    {
        Assert.Null(EngineKernelFit.Fit(Timings(replayed: false), "2026-12-07").Kernels.GraphWork);

        var t = Timings(replayed: true);
        var oneMissing = t with { Replayed = t.Replayed!.Where((p, i) => i != 1).ToList() };
        Assert.Null(EngineKernelFit.Fit(oneMissing, "2026-12-07").Kernels.GraphWork);
        var noSaved = t with { Replayed = t.Replayed!.Select((p, i) => i == 0 ? p with { SavedBytes = 0 } : p).ToList() };
        Assert.Null(EngineKernelFit.Fit(noSaved, "2026-12-07").Kernels.GraphWork);
    }

    [Fact]
    public void Given_a_replay_faster_than_its_products_are_priced_When_fitted_Then_its_value_is_held_at_zero_and_the_profile_still_validates()
    {
        var t = Timings(replayed: true, truth: (h, tokens) => h == 768 && tokens == 1024 ? (-0.5, -0.5) : (1, 1));

        var fit = EngineKernelFit.Fit(t, "2026-12-07");

        var first = fit.Kernels.GraphWork!.Points.Single(p => p.Hidden == 768 && p.Tokens == 1024);
        Assert.Equal((0.0, 0.0), (first.ForwardMsPerGb, first.BackwardMsPerGb));
        var last = fit.Kernels.GraphWork.Points[^1];
        Assert.Equal(1.0, last.ForwardMsPerGb, 1e-3);
        Assert.Equal(1.0, last.BackwardMsPerGb, 1e-3);
        var profile = EngineKernelFit.Apply(ProfileCatalog.Default.Load("h100-1x-vm"), fit.Kernels);
        profile.Validated("test");
    }

    /// <summary>bf16 products' rate per shape: 0.5 of the large rate at the smallest shape, rising with width and tokens; fp32 at a tenth.</summary>
    private static LayerMatmulRates Rates()
    {
        var points = new List<LayerMatmulPoint>();
        for (int i = 0; i < Hidden.Length; i++)
            for (int j = 0; j < Tokens.Length; j++)
            {
                double share = 0.5 + 0.1 * i + 0.1 * j;
                points.Add(new LayerMatmulPoint { Hidden = Hidden[i], Tokens = Tokens[j], Bf16Tflops = 800 * share, Fp32Tflops = 80 * share });
            }
        return new LayerMatmulRates { Method = "synthetic", Date = "2026-12-07", Points = points };
    }

    [Fact]
    public void Given_a_profile_fitted_on_replays_with_shape_rates_When_a_replayed_gpt2_xl_step_is_priced_Then_its_layers_take_the_replays_times_plus_the_landing()
    {
        // Every pass at its shape's rate: the eager ones at the constants above, the replays at Truth's time beyond their products.
        var rates = Rates();
        var passes = new List<LayerTiming>();
        var replays = new List<LayerTiming>();
        foreach (int h in Hidden)
            foreach (long tokens in Tokens)
            {
                double flops = 2.0 * tokens * 12 * h * h, saved = 40.0 * h * tokens;
                double products = flops / (rates.RateAt(Precision.Bf16, h, tokens)!.Value.FlopsPerSecond * Efficiency);
                double rest = saved / (SavedGbps * 1e9) + OverheadUs * 1e-6;
                var (f, b) = Truth(h, tokens);
                passes.Add(new LayerTiming(flops, saved, h, false, products + rest, "forward", tokens));
                passes.Add(new LayerTiming(flops, saved, h, false, products + rest, "recompute", tokens));
                passes.Add(new LayerTiming(flops, saved, h, true, 2 * products + WorkRatio * rest, "backward", tokens));
                replays.Add(new LayerTiming(flops, saved, h, false, products + f * saved / 1e12, "forward", tokens));
                replays.Add(new LayerTiming(flops, saved, h, true, 2 * products + b * saved / 1e12, "backward", tokens));
            }
        var t = new EngineKernelTimings(passes, FloorSeconds: 20e-6, OptimizerSeconds: 1e-3, OptimizerElements: 100_000_000, Large, "synthetic",
            LayerMatmul: rates, Precision: Precision.Bf16, Replayed: replays);
        var fit = EngineKernelFit.Fit(t, "2026-12-07");
        var hw = EngineKernelFit.Apply(ProfileCatalog.Default.Load("h100-1x-vm"), fit.Kernels with { KindFloors = null });
        hw.Validated("test");

        // gpt2-xl (h 1600) at micro-batch 1 (1,024 tokens): a shape of the grid, priced from its own replays.
        var model = ModelCatalog.Default.Load("gpt2-xl");
        var s = new TrainingSettings { MicroBatch = 1, SeqLen = 1024, Precision = Precision.Bf16, Executor = ExecutorKind.Aios, CudaGraphs = true };
        var program = StepScheduler.Build(model, hw, s, false, ProgramShape.For(s, hw));
        var costs = Simulator.Costs(program, hw, s);
        Operation Layer(OpKind kind) => program.Ops.First(o => o.Resource == ResourceKind.Compute && o.Kind == kind && o.Unit.Kind == UnitKind.Layer && o.Unit.Number == 5);
        var (forward, backward) = (Layer(OpKind.Forward), Layer(OpKind.Backward));
        // The engine's own layer work (its FLOPs and saved bytes, not the synthetic ones) at the fitted efficiency and the replays'
        // time beyond the products per GB of the forward's saved bytes: what the replay of a layer of that work would take.
        double rate = rates.RateAt(Precision.Bf16, 1600, 1024)!.Value.FlopsPerSecond * fit.Kernels.MatmulEfficiency.Value;
        double savedGb = forward.ElementwiseBytes / 1e9;
        var (gf, gb) = Truth(1600, 1024);
        double expectedForward = forward.Flops / rate + gf * savedGb / 1e3;
        double landing = backward.SumBytes / (fit.Kernels.OptimizerGbps!.Value * 1e9);
        // A backward op carries twice the forward's FLOPs (its products) and saved bytes (the forward's are half).
        double expectedBackward = backward.Flops / rate + gb * (backward.ElementwiseBytes / 2 / 1e9) / 1e3 + landing;

        Assert.Equal(expectedForward, costs.Duration(forward, model.HiddenSize).Seconds, expectedForward * 1e-3);
        Assert.Equal(expectedBackward, costs.Duration(backward, model.HiddenSize).Seconds, expectedBackward * 1e-3);
        Assert.True(landing > 0, "the resident landing of a layer's gradients is priced apart from its replayed backward");
    }
}

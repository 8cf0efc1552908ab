using AiOs.Planner.Calibration.Compute;
using AiOs.Planner.Hardware;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Tests;

/// <summary>
/// The layer's passes replayed from CUDA graphs (<c>aios calibrate-gpu</c> on CUDA) turned into <see cref="EngineKernels.GraphWork"/>:
/// per shape, the multipliers of the fit's element-wise and overhead term that make its products plus that term the replay's time.
/// </summary>
public class EngineKernelGraphWorkTests
{
    private static readonly FlopRate Large = FlopRate.FromTflops(800);
    private const double Efficiency = 0.8, SavedGbps = 900, OverheadUs = 40, WorkRatio = 2.5;

    private static readonly int[] Hidden = [768, 1280, 2048];
    private static readonly long[] Tokens = [1024, 4096, 16384];

    private static (double Flops, double Saved, double Products, double Remainder) Shape(int h, long tokens)
    {
        double flops = 2.0 * tokens * 12 * h * h, saved = 40.0 * h * tokens;
        return (flops, saved, flops / (Large.FlopsPerSecond * Efficiency), saved / (SavedGbps * 1e9) + OverheadUs * 1e-6);
    }

    /// <summary>The multipliers the synthetic replays run at: smaller at fewer tokens, where the eager fixed term is most of a pass.</summary>
    private static (double Forward, double Backward) Truth(int h, long tokens) => (0.3 + 0.1 * Math.Log2(tokens / 1024.0) + h / 20480.0, 0.2 + 0.12 * Math.Log2(tokens / 1024.0));

    /// <summary>Eager passes from the constants above (backward = 2 × products + 2.5 × rest), and, with <paramref name="replayed"/>, replays at <see cref="Truth"/>.</summary>
    private static EngineKernelTimings Timings(bool replayed, Func<int, long, (double, double)>? truth = null)
    {
        var passes = new List<LayerTiming>();
        var replays = new List<LayerTiming>();
        foreach (int h in Hidden)
            foreach (long t in Tokens)
            {
                var (flops, saved, products, rest) = Shape(h, t);
                passes.Add(new LayerTiming(flops, saved, h, false, products + rest, "forward", t));
                passes.Add(new LayerTiming(flops, saved, h, false, 1.05 * (products + rest), "recompute", t));
                passes.Add(new LayerTiming(flops, saved, h, true, 2 * products + WorkRatio * rest, "backward", t));
                var (gf, gb) = (truth ?? Truth)(h, t);
                replays.Add(new LayerTiming(flops, saved, h, false, products + gf * rest, "forward", t));
                replays.Add(new LayerTiming(flops, saved, h, true, 2 * products + WorkRatio * gb * rest, "backward", t));
            }
        return new EngineKernelTimings(passes, FloorSeconds: 20e-6, OptimizerSeconds: 1e-3, OptimizerElements: 100_000_000, Large, "synthetic",
            Replayed: replayed ? replays : null);
    }

    [Fact]
    public void Given_replays_at_every_shape_When_fitted_Then_each_shapes_multipliers_are_recovered()
    {
        var fit = EngineKernelFit.Fit(Timings(replayed: true), "2026-12-07");

        var g = fit.Kernels.GraphWork!;
        Assert.Equal(Efficiency, fit.Kernels.MatmulEfficiency.Value, 3);
        Assert.Equal(WorkRatio, fit.Kernels.BackwardWorkRatio!.Value, 3);
        Assert.Equal(Hidden.Length * Tokens.Length, g.Points.Count);
        foreach (var p in g.Points)
        {
            var (f, b) = Truth(p.Hidden, p.Tokens);
            Assert.Equal(f, p.Forward, 1e-3);
            Assert.Equal(b, p.Backward, 1e-3);
        }
        Assert.Contains("CUDA graphs", g.Method);
    }

    [Fact]
    public void Given_no_replays_or_a_shape_without_its_backward_When_fitted_Then_there_is_no_graph_work()
    {
        Assert.Null(EngineKernelFit.Fit(Timings(replayed: false), "2026-12-07").Kernels.GraphWork);

        var t = Timings(replayed: true);
        var oneMissing = t with { Replayed = t.Replayed!.Where((p, i) => i != 1).ToList() };
        Assert.Null(EngineKernelFit.Fit(oneMissing, "2026-12-07").Kernels.GraphWork);
    }

    [Fact]
    public void Given_a_replay_faster_than_its_products_are_priced_When_fitted_Then_its_multiplier_is_held_at_zero_and_the_profile_still_validates()
    {
        var t = Timings(replayed: true, truth: (h, tokens) => h == 768 && tokens == 1024 ? (-0.5, -0.5) : (1, 1));

        var fit = EngineKernelFit.Fit(t, "2026-12-07");

        var first = fit.Kernels.GraphWork!.Points.Single(p => p.Hidden == 768 && p.Tokens == 1024);
        Assert.Equal((0.0, 0.0), (first.Forward, first.Backward));
        var profile = EngineKernelFit.Apply(ProfileCatalog.Default.Load("h100-1x-vm"), fit.Kernels);
        profile.Validated("test");
    }
}

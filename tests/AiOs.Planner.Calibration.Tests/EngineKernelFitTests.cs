using AiOs.Planner.Calibration.Compute;
using AiOs.Planner.Hardware;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Tests;

public class EngineKernelFitTests
{
    private static readonly FlopRate Matmul = FlopRate.FromTflops(800);

    /// <summary>Timings an engine with known kernels would produce: η 0.6, 900 GB/s of saved bytes, 15 µs, backward 2.2×, recompute 1.1×.</summary>
    private static EngineKernelTimings Synthetic()
    {
        var passes = new List<LayerTiming>();
        foreach (int h in new[] { 768, 1280, 2048 })
            foreach (int tokens in new[] { 2048, 4096, 8192 })
            {
                double flops = 2.0 * tokens * 12 * h * h, saved = 40.0 * h * tokens;
                double forward = flops / (Matmul.FlopsPerSecond * 0.6) + saved / 900e9 + 15e-6;
                passes.Add(new LayerTiming(flops, saved, h, false, forward, "forward"));
                passes.Add(new LayerTiming(flops, saved, h, false, 1.1 * forward, "recompute"));
                passes.Add(new LayerTiming(flops, saved, h, true, 2.2 * forward, "backward"));
            }
        return new EngineKernelTimings(passes, FloorSeconds: 180e-6, OptimizerSeconds: 1e-3, OptimizerElements: 100_000_000, Matmul, "synthetic");
    }

    [Fact]
    public void Given_timings_of_known_kernels_When_fitted_Then_every_constant_is_recovered()
    {
        var k = EngineKernelFit.Fit(Synthetic(), "2026-12-04").Kernels;

        Assert.Equal(0.6, k.MatmulEfficiency.Value, 3);
        Assert.Equal(900, k.SavedBytesGbps.Value, 0);
        Assert.Equal(15, k.LayerOverheadUs.Value, 1);
        Assert.Equal(2.2, k.BackwardRatio.Value, 3);
        Assert.Equal(1.1, k.RecomputeRatio.Value, 3);
        Assert.Equal(180, k.LayerLaunchFloorUs.Value, 3);
        Assert.Equal(28.0 * 100_000_000 / 1e-3 / 1e9, k.OptimizerGbps!.Value, 1);
        Assert.Equal(FigureSource.Measured, k.MatmulEfficiency.Provenance!.Source);
    }

    [Fact]
    public void Given_backwards_that_take_twice_the_matmuls_and_a_ratio_of_the_rest_When_fitted_Then_that_ratio_is_recovered()
    {
        // Backward = 2 × matmul + 1.4 × (saved bytes + overhead): the matmul share grows with h, so one ratio of the whole
        // forward cannot fit every shape, while the two-term model is exact.
        var t = Synthetic();
        var passes = t.Passes.Select(p => p.Label != "backward" ? p : p with
        {
            Seconds = 2 * p.Flops / (Matmul.FlopsPerSecond * 0.6) + 1.4 * (p.SavedBytes / 900e9 + 15e-6),
        }).ToList();

        var k = EngineKernelFit.Fit(t with { Passes = passes }, "2026-12-06").Kernels;

        Assert.Equal(1.4, k.BackwardWorkRatio!.Value, 3);
        Assert.Contains("work-bound backward passes", k.BackwardWorkRatio.Provenance!.Method);
    }

    [Fact]
    public void Given_backwards_faster_than_twice_their_matmuls_When_fitted_Then_no_work_ratio_is_written()
    {
        // A negative rest would mean the matmul term is wrong for backward: keep the whole-ratio model alone.
        var t = Synthetic();
        var passes = t.Passes.Select(p => p.Label != "backward" ? p : p with { Seconds = 1.2 * p.Flops / (Matmul.FlopsPerSecond * 0.6) }).ToList();

        Assert.Null(EngineKernelFit.Fit(t with { Passes = passes }, "2026-12-06").Kernels.BackwardWorkRatio);
    }

    [Fact]
    public void Given_launch_bound_backwards_among_the_passes_When_fitted_Then_the_work_ratio_comes_from_the_work_bound_ones()
    {
        // Backward = 2 × matmul + 1.4 × the rest where work-bound (three shapes above twice the 1 ms backward floor); the
        // others held at 1.5 ms by the host's dispatch must not pull the ratio up.
        var t = Synthetic() with { FloorSeconds = 1e-3, BackwardFloorSeconds = 1e-3 };
        var passes = t.Passes.Select(p => p.Label != "backward" ? p : p with
        {
            Seconds = Math.Max(1.5e-3, 2 * p.Flops / (Matmul.FlopsPerSecond * 0.6) + 1.4 * (p.SavedBytes / 900e9 + 15e-6)),
        }).ToList();
        Assert.Equal(6, passes.Count(p => p.Label == "backward" && p.Seconds == 1.5e-3));

        var k = EngineKernelFit.Fit(t with { Passes = passes }, "2026-12-06").Kernels;

        Assert.Equal(1.4, k.BackwardWorkRatio!.Value, 3);
    }

    [Fact]
    public void Given_a_rest_term_too_small_to_carry_the_backward_When_fitted_Then_no_work_ratio_is_written()
    {
        // Forwards all matmul (no saved-bytes or overhead term fitted), backwards far above twice that: r would pass any bound.
        var t = Synthetic();
        var passes = t.Passes.Select(p => p.Label switch
        {
            "backward" => p with { Seconds = 3 * p.Flops / (Matmul.FlopsPerSecond * 0.6) },
            _ => p with { Seconds = p.Flops / (Matmul.FlopsPerSecond * 0.6) },
        }).ToList();

        var k = EngineKernelFit.Fit(t with { Passes = passes }, "2026-12-06").Kernels;

        Assert.Null(k.BackwardWorkRatio);
    }

    [Fact]
    public void Given_recomputes_that_cost_the_forward_plus_fixed_host_time_When_fitted_Then_the_ratio_is_the_work_s_and_the_method_says_so()
    {
        // The H100 VM's probe (2026-12-06): recompute − forward ≈ 0.16 ms at every large shape, so ratios fall with size.
        var t = Synthetic();
        var passes = t.Passes.Select(p => p.Label == "recompute" ? p with { Seconds = p.Seconds / 1.1 + 1.6e-3 } : p).ToList();
        double median = passes.Where(p => p.Label == "recompute")
            .Select(r => r.Seconds / passes.First(f => f.Label == "forward" && f.Flops == r.Flops && f.Hidden == r.Hidden).Seconds)
            .Order().ElementAt(4);

        var k = EngineKernelFit.Fit(t with { Passes = passes }, "2026-12-06").Kernels;

        Assert.True(median > 1.2, $"the synthetic shapes' median ratio ({median:0.00}) counts the host time");
        Assert.Equal(1.0, k.RecomputeRatio.Value, 3);
        Assert.Contains("slope", k.RecomputeRatio.Provenance!.Method);
    }

    [Fact]
    public void Given_too_few_work_bound_recomputes_When_fitted_Then_the_ratio_is_the_median_of_all()
    {
        var t = Synthetic();
        // Every recompute within twice the floor: none is work-bound.
        var passes = t.Passes.Where(p => p.Label != "recompute" || p.Hidden == 768).Select(p => p.Label == "recompute" ? p with { Seconds = 300e-6 } : p).ToList();

        var k = EngineKernelFit.Fit(t with { Passes = passes }, "2026-12-06").Kernels;

        Assert.Contains("median", k.RecomputeRatio.Provenance!.Method);
    }

    [Fact]
    public void Given_timings_that_need_a_matmul_faster_than_the_benchmark_When_fitted_Then_the_efficiency_is_held_at_one_and_the_element_wise_rate_under_the_memory()
    {
        // As the H100's probe came out (2026-12-05): unbounded, 6.5 × the matmul benchmark with the element-wise term carrying the time.
        var t = Synthetic();
        var passes = t.Passes.Select(p => p with { Seconds = p.Flops / (Matmul.FlopsPerSecond * 6.5) + p.SavedBytes / 700e9 + 60e-6 })
            .Select(p => p with { Seconds = p.Seconds * (p.Label == "backward" ? 1.6 : p.Label == "recompute" ? 1.2 : 1) }).ToList();

        var k = EngineKernelFit.Fit(t with { Passes = passes, MemoryBandwidth = Bandwidth.FromGBps(3350) }, "2026-12-05").Kernels;

        Assert.Equal(1.0, k.MatmulEfficiency.Value, 6);
        Assert.InRange(k.SavedBytesGbps.Value, 0, 3350);
        Assert.Contains("at its ceiling", k.MatmulEfficiency.Provenance!.Method);
    }

    [Fact]
    public void Given_a_previous_step_overhead_When_refitted_Then_it_is_kept()
    {
        var previous = new EngineKernels { MatmulEfficiency = 1, SavedBytesGbps = 1000, StepOverheadUs = 750 };

        Assert.Equal(750, EngineKernelFit.Fit(Synthetic(), "2026-12-04", previous).Kernels.StepOverheadUs.Value);
    }

    [Fact]
    public void Given_no_positive_floor_When_fitted_Then_it_is_refused() =>
        Assert.Throws<ArgumentException>(() => EngineKernelFit.Fit(Synthetic() with { FloorSeconds = double.NaN }, "2026-12-04"));

    [Fact]
    public void Given_a_cpu_only_profile_When_kernels_are_applied_Then_the_missing_gpu_section_is_named()
    {
        var profile = ProfileCatalog.Default.Load("ci-2core-24gb");
        var kernels = EngineKernelFit.Fit(Synthetic(), "2026-12-04").Kernels;

        var e = Assert.Throws<ArgumentException>(() => EngineKernelFit.Apply(profile, kernels));
        Assert.Contains("no gpu section", e.Message);
    }

    [Fact]
    public void Given_small_shapes_held_at_their_dispatch_floors_When_fitted_Then_the_work_terms_come_from_the_work_bound_passes_and_each_floor_is_kept()
    {
        // What a synchronised engine shows: every pass takes max(work, its floor). Fitting the floor-bound passes as work
        // (the first H200 calibration, R² 0.18) drags the efficiency down; fitting the others recovers it.
        const double noGrad = 400e-6, autograd = 700e-6, backwardFloor = 1500e-6;
        var passes = new List<LayerTiming>();
        foreach (int h in new[] { 768, 1280, 2048 })
            foreach (int tokens in new[] { 1024, 2048, 8192, 16384 })
            {
                double flops = 2.0 * tokens * 12 * h * h, saved = 40.0 * h * tokens;
                double forward = flops / (Matmul.FlopsPerSecond * 0.6) + saved / 900e9 + 15e-6;
                passes.Add(new LayerTiming(flops, saved, h, false, Math.Max(forward, noGrad), "forward"));
                passes.Add(new LayerTiming(flops, saved, h, false, Math.Max(1.1 * forward, autograd), "recompute"));
                passes.Add(new LayerTiming(flops, saved, h, true, Math.Max(2.2 * forward, backwardFloor), "backward"));
            }
        var t = new EngineKernelTimings(passes, autograd, 1e-3, 100_000_000, Matmul, "synthetic", noGrad, backwardFloor);

        var k = EngineKernelFit.Fit(t, "2026-12-05").Kernels;

        Assert.Equal(0.6, k.MatmulEfficiency.Value, 2);
        Assert.Equal(2.2, k.BackwardRatio.Value, 2);
        Assert.Equal(400, k.LayerLaunchFloorUs.Value, 3);
        Assert.Equal(700, k.AutogradLaunchFloorUs!.Value, 3);
        Assert.Equal(1500, k.BackwardLaunchFloorUs!.Value, 3);
    }

    [Fact]
    public void Given_floors_of_further_layer_kinds_When_fitted_Then_the_kernels_carry_the_main_kind_and_one_entry_per_other_kind_with_previous_ones_kept()
    {
        const string llama = "rmsnorm/rope/swiglu/no_bias/mha/no_dropout", qwen = "rmsnorm/rope/swiglu/qkv_bias/gqa/no_dropout", old = "old-kind";
        var t = Synthetic() with
        {
            Kind = EngineLayerKind.Gpt2,
            KindFloors =
            [
                new KindFloorTiming(EngineLayerKind.Gpt2, "gpt2-xl", 1e-4, 2e-4, 3e-4), // the main kind: its floors are the main ones
                new KindFloorTiming(llama, "llama-2-7b", 317e-6, 427e-6, 936e-6),
                new KindFloorTiming(qwen, "qwen2-7b", 345e-6, 476e-6, 964e-6),
                new KindFloorTiming(llama, "llama-2-13b", 1e-3, 1e-3, 1e-3), // the same kind again: the first is kept
            ],
        };
        var previous = new EngineKernels
        {
            MatmulEfficiency = 1, SavedBytesGbps = 1000,
            KindFloors = [new LayerKindFloors { Kind = old, ForwardUs = 1, AutogradUs = 2, BackwardUs = 3 }, new LayerKindFloors { Kind = llama, ForwardUs = 9, AutogradUs = 9, BackwardUs = 9 }],
        };

        var k = EngineKernelFit.Fit(t, "2026-12-06", previous).Kernels;

        Assert.Equal(EngineLayerKind.Gpt2, k.FloorKind);
        Assert.Equal([llama, qwen, old], k.KindFloors!.Select(f => f.Kind));
        var l = k.KindFloors![0];
        Assert.Equal((317.0, 427.0, 936.0), (l.ForwardUs.Value, l.AutogradUs.Value, l.BackwardUs.Value));
        Assert.Equal("2026-12-06", l.AutogradUs.Provenance!.Date);
        Assert.Contains("llama-2-7b", l.AutogradUs.Provenance.Method);
        Assert.Equal(180, k.AutogradLaunchFloorUs!.Value, 3);
    }

    [Fact]
    public void Given_in_step_floors_of_the_layer_by_layer_trainer_When_fitted_Then_its_ratios_to_the_resident_floors_are_kept()
    {
        var t = WithProbeFloors() with
        {
            InStepFloors =
            [
                InStep(EngineLayerKind.Gpt2, "gpt2", 250e-6, 400e-6, 900e-6) with
                {
                    LayerwiseForwardSeconds = 350e-6, LayerwiseRecomputeSeconds = 560e-6, LayerwiseBackwardSeconds = 900e-6, LayerwiseSpans = 24,
                },
            ],
        };

        var lw = EngineKernelFit.Fit(t, "2026-12-06").Kernels.LayerwiseFloorRatios!;

        Assert.Equal((1.4, 1.4, 1.0), (lw.Forward.Value, lw.Recompute.Value, lw.Backward.Value));
        Assert.Contains("layer-by-layer trainer", lw.Recompute.Provenance!.Method);
    }

    /// <summary>gpt2's in-step floors with the layer-by-layer run (ratios 1.4, 1.4, 1.0 to the resident floors).</summary>
    private static InStepFloorTiming Gpt2Layerwise => InStep(EngineLayerKind.Gpt2, "gpt2", 250e-6, 400e-6, 900e-6) with
    {
        LayerwiseForwardSeconds = 350e-6, LayerwiseRecomputeSeconds = 560e-6, LayerwiseBackwardSeconds = 900e-6, LayerwiseSpans = 24,
    };

    private static EngineKernels FittedWith(InStepFloorTiming s) => EngineKernelFit.Fit(WithProbeFloors() with { InStepFloors = [s] }, "2026-12-06").Kernels;

    [Fact]
    public void Given_passes_timed_beside_the_cpu_update_When_fitted_Then_their_ratios_to_the_layer_by_layer_passes_alone_are_kept()
    {
        var bu = FittedWith(Gpt2Layerwise with
        {
            BesideForwardSeconds = 525e-6, BesideRecomputeSeconds = 672e-6, BesideBackwardSeconds = 1800e-6, BesideSpans = 10,
        }).BesideUpdateFloorRatios!;

        Assert.Equal(1.5, bu.Forward.Value, 6);
        Assert.Equal(1.2, bu.Recompute.Value, 6);
        Assert.Equal(2.0, bu.Backward.Value, 6);
        Assert.Contains("with CPU Adam running beside them", bu.Backward.Provenance!.Method);
    }

    [Fact]
    public void Given_a_pass_faster_beside_the_update_than_alone_When_fitted_Then_no_beside_ratios_are_written()
    {
        // The update can only slow its neighbours: a ratio below 1 is the probe missing the effect (few spans, a noisy host).
        var kernels = FittedWith(Gpt2Layerwise with
        {
            BesideForwardSeconds = 525e-6, BesideRecomputeSeconds = 672e-6, BesideBackwardSeconds = 780e-6, BesideSpans = 10,
        });

        Assert.Null(kernels.BesideUpdateFloorRatios);
    }

    [Fact]
    public void Given_beside_passes_but_implausible_layer_by_layer_ratios_When_fitted_Then_neither_is_written()
    {
        // The beside ratios are over the layer-by-layer passes: without those ratios the plan would scale the resident floors.
        var kernels = FittedWith(Gpt2Layerwise with
        {
            LayerwiseForwardSeconds = 16 * 250e-6,
            BesideForwardSeconds = 32 * 250e-6, BesideRecomputeSeconds = 672e-6, BesideBackwardSeconds = 1800e-6, BesideSpans = 10,
        });

        Assert.Null(kernels.LayerwiseFloorRatios);
        Assert.Null(kernels.BesideUpdateFloorRatios);
    }

    [Fact]
    public void Given_no_passes_beside_the_update_When_fitted_Then_no_beside_ratios_are_written()
    {
        Assert.Null(FittedWith(Gpt2Layerwise).BesideUpdateFloorRatios);
    }

    [Fact]
    public void Given_a_layer_by_layer_run_far_off_the_resident_floors_When_fitted_Then_no_ratios_are_written()
    {
        // A CPU device's offloaded passes (16× the resident forward there) are no dispatch floors: a profile would refuse them.
        var t = WithProbeFloors() with
        {
            InStepFloors =
            [
                InStep(EngineLayerKind.Gpt2, "gpt2", 250e-6, 400e-6, 900e-6) with
                {
                    LayerwiseForwardSeconds = 16 * 250e-6, LayerwiseRecomputeSeconds = 560e-6, LayerwiseBackwardSeconds = 900e-6, LayerwiseSpans = 24,
                },
            ],
        };

        Assert.Null(EngineKernelFit.Fit(t, "2026-12-06").Kernels.LayerwiseFloorRatios);
    }

    [Fact]
    public void Given_in_step_floors_without_the_layer_by_layer_run_When_fitted_Then_no_ratios_are_written()
    {
        var t = WithProbeFloors() with { InStepFloors = [InStep(EngineLayerKind.Gpt2, "gpt2", 250e-6, 400e-6, 900e-6)] };

        Assert.Null(EngineKernelFit.Fit(t, "2026-12-06").Kernels.LayerwiseFloorRatios);
    }

    [Fact]
    public void Given_no_kind_floors_When_fitted_Then_the_kernels_have_none()
    {
        var k = EngineKernelFit.Fit(Synthetic(), "2026-12-06").Kernels;

        Assert.Null(k.FloorKind);
        Assert.Null(k.KindFloors);
    }

    private const string Llama = "rmsnorm/rope/swiglu/no_bias/mha/no_dropout", Qwen = "rmsnorm/rope/swiglu/qkv_bias/gqa/no_dropout";

    /// <summary>The synthetic timings with probe floors for GPT-2's kind (180 µs with autograd) and Llama's and Qwen's kinds.</summary>
    private static EngineKernelTimings WithProbeFloors() => Synthetic() with
    {
        Kind = EngineLayerKind.Gpt2,
        NoGradFloorSeconds = 100e-6,
        BackwardFloorSeconds = 400e-6,
        KindFloors = [new KindFloorTiming(Llama, "llama-2-7b", 317e-6, 427e-6, 936e-6), new KindFloorTiming(Qwen, "qwen2-7b", 345e-6, 476e-6, 964e-6)],
    };

    private static InStepFloorTiming InStep(string kind, string family, double forward, double autograd, double backward) =>
        new(kind, family, forward, autograd, backward, 24, 24, 24, $"{family} widened to h=768, 4 layers, mb 1 × 64");

    [Fact]
    public void Given_in_step_floors_When_fitted_Then_they_replace_the_probes_floors_of_their_kinds_and_the_others_keep_the_probes()
    {
        var t = WithProbeFloors() with
        {
            InStepFloors =
            [
                InStep(EngineLayerKind.Gpt2, "gpt2", 250e-6, 400e-6, 900e-6),
                InStep(Llama, "llama-2-7b", 500e-6, 700e-6, 1400e-6),
                InStep(Llama, "llama-2-13b", 1e-3, 1e-3, 1e-3), // the same kind again: the first is kept
            ],
        };

        var k = EngineKernelFit.Fit(t, "2026-12-06").Kernels;

        Assert.Equal((250.0, 400.0, 900.0), (k.LayerLaunchFloorUs.Value, k.AutogradLaunchFloorUs!.Value, k.BackwardLaunchFloorUs!.Value));
        Assert.Equal("aios calibrate-gpu: a layer forward with autograd, median in-step span of the engine's resident trainer, gpt2 widened to h=768, 4 layers, mb 1 × 64, 24 spans (synthetic)",
            k.AutogradLaunchFloorUs.Provenance!.Method);
        Assert.Equal([Llama, Qwen], k.KindFloors!.Select(f => f.Kind));
        var llama = k.KindFloors![0];
        Assert.Equal((500.0, 700.0, 1400.0), (llama.ForwardUs.Value, llama.AutogradUs.Value, llama.BackwardUs.Value));
        Assert.Contains("median in-step span", llama.BackwardUs.Provenance!.Method);
        var qwen = k.KindFloors![1];
        Assert.Equal((345.0, 476.0, 964.0), (qwen.ForwardUs.Value, qwen.AutogradUs.Value, qwen.BackwardUs.Value));
        Assert.Contains("at a tiny shape", qwen.AutogradUs.Provenance!.Method);
    }

    [Fact]
    public void Given_no_in_step_floors_of_the_main_kind_When_fitted_Then_the_main_floors_are_the_probes()
    {
        var t = WithProbeFloors() with { InStepFloors = [InStep(Llama, "llama-2-7b", 500e-6, 700e-6, 1400e-6)] };

        var k = EngineKernelFit.Fit(t, "2026-12-06").Kernels;

        Assert.Equal((100.0, 180.0, 400.0), (k.LayerLaunchFloorUs.Value, k.AutogradLaunchFloorUs!.Value, k.BackwardLaunchFloorUs!.Value));
        Assert.Contains("at a tiny shape", k.LayerLaunchFloorUs.Provenance!.Method);
        Assert.Equal(700, k.KindFloors![0].AutogradUs.Value, 3);
    }

    [Fact]
    public void Given_a_non_positive_in_step_floor_When_fitted_Then_it_is_refused_naming_the_family()
    {
        var t = WithProbeFloors() with { InStepFloors = [InStep(EngineLayerKind.Gpt2, "gpt2", double.NaN, 400e-6, 900e-6)] };

        var e = Assert.Throws<ArgumentException>(() => EngineKernelFit.Fit(t, "2026-12-06"));
        Assert.Contains("gpt2", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_another_kind_whose_extra_work_is_element_wise_When_fitted_Then_its_elementwise_ratio_puts_the_difference_on_that_work_alone()
    {
        // The kind's layer: the main fit's matmuls, 1.6 × its saved-bytes time and the same overhead (forward), as a SwiGLU/RMSNorm layer
        // does more element-wise work with the same products.
        const string llama = "rmsnorm/rope/swiglu/no_bias/mha/no_dropout";
        double flops = 2.0 * 8192 * 12 * 2048 * 2048, saved = 40.0 * 2048 * 8192;
        double products = flops / (Matmul.FlopsPerSecond * 0.6);
        var t = Synthetic() with
        {
            KindFloors = [new KindFloorTiming(llama, "llama-2-7b", 317e-6, 427e-6, 936e-6, [new LayerTiming(flops, saved, 2048, false, products + 1.6 * (saved / 900e9) + 15e-6, "forward")])],
        };

        var l = Assert.Single(EngineKernelFit.Fit(t, "2026-12-07").Kernels.KindFloors!);

        Assert.Equal(1.6, l.ForwardElementwiseRatio!.Value, 2);
        // The whole ratio of the same pass is smaller: the rest is a part of it.
        Assert.InRange(l.ForwardWorkRatio!.Value, 1.01, 1.59);
        Assert.Contains("price of its element-wise work", l.ForwardElementwiseRatio.Provenance!.Method);
    }

    [Fact]
    public void Given_work_bound_passes_of_another_kind_When_fitted_Then_its_entry_carries_their_ratio_to_the_main_fit_s_price()
    {
        const string llama = "rmsnorm/rope/swiglu/no_bias/mha/no_dropout";
        double flops = 2.0 * 8192 * 12 * 2048 * 2048, saved = 40.0 * 2048 * 8192;
        double forward = flops / (Matmul.FlopsPerSecond * 0.6) + saved / 900e9 + 15e-6;
        var t = Synthetic() with
        {
            KindFloors =
            [
                new KindFloorTiming(llama, "llama-2-7b", 317e-6, 427e-6, 936e-6,
                    [new LayerTiming(flops, saved, 2048, false, 1.25 * forward, "forward"), new LayerTiming(flops, saved, 2048, true, 1.4 * 2.2 * forward, "backward")]),
            ],
        };

        var k = EngineKernelFit.Fit(t, "2026-12-06").Kernels;

        var l = Assert.Single(k.KindFloors!);
        Assert.Equal(1.25, l.ForwardWorkRatio!.Value, 2);
        // The backward's price as the simulator makes it: twice the matmuls, the fitted work ratio of the rest.
        double products = flops / (Matmul.FlopsPerSecond * k.MatmulEfficiency.Value), rest = saved / (k.SavedBytesGbps.Value * 1e9) + k.LayerOverheadUs.Value * 1e-6;
        double price = 2 * products + k.BackwardWorkRatio!.Value * rest;
        // Over the main kind's own measured ÷ price at that width (its work-bound backward of most work at h = 2048), so the
        // fit's local error there is not the kind's.
        var mainAt2048 = t.Passes.Where(p => p.Label == "backward" && p.Hidden == 2048 && p.Seconds >= 2 * t.FloorOf("backward")).MaxBy(p => p.Flops)!;
        double mainPrice = 2 * mainAt2048.Flops / (Matmul.FlopsPerSecond * k.MatmulEfficiency.Value)
            + k.BackwardWorkRatio!.Value * (mainAt2048.SavedBytes / (k.SavedBytesGbps.Value * 1e9) + k.LayerOverheadUs.Value * 1e-6);
        Assert.Equal(1.4 * 2.2 * forward / price / (mainAt2048.Seconds / mainPrice), l.BackwardWorkRatio!.Value, 2);
        // The kind timed exactly as the main kind's passes of most work at that width: ratio 1, whatever the fit's residual there.
        LayerTiming Most(string label) => t.Passes.Where(p => p.Hidden == 2048 && p.Label == label).MaxBy(p => p.Flops)!;
        var same = Synthetic() with
        {
            KindFloors = [new KindFloorTiming(llama, "llama-2-7b", 317e-6, 427e-6, 936e-6, [Most("forward"), Most("backward")])],
        };
        var twin = Assert.Single(EngineKernelFit.Fit(same, "2026-12-06").Kernels.KindFloors!);
        Assert.Equal(1.0, twin.ForwardWorkRatio!.Value, 4);
        Assert.Equal(1.0, twin.BackwardWorkRatio!.Value, 4);
        Assert.Contains("llama-2-7b", l.ForwardWorkRatio.Provenance!.Method);
        // Without work-bound passes the entry has floors only, and the kind is priced as the main kind's.
        var floorsOnly = EngineKernelFit.Fit(t with { KindFloors = [new KindFloorTiming(llama, "llama-2-7b", 317e-6, 427e-6, 936e-6)] }, "2026-12-06").Kernels;
        Assert.Null(Assert.Single(floorsOnly.KindFloors!).ForwardWorkRatio);
        // A kind kept from the previous profile keeps its floors, not ratios measured against that day's fit.
        var previous = new EngineKernels
        {
            MatmulEfficiency = 1, SavedBytesGbps = 1000,
            KindFloors = [new LayerKindFloors { Kind = "old-kind", ForwardUs = 1, AutogradUs = 2, BackwardUs = 3, ForwardWorkRatio = 1.3, BackwardWorkRatio = 1.2 }],
        };
        var kept = EngineKernelFit.Fit(Synthetic(), "2026-12-06", previous).Kernels.KindFloors!.Single(f => f.Kind == "old-kind");
        Assert.Equal(1, kept.ForwardUs.Value);
        Assert.Null(kept.ForwardWorkRatio);
        Assert.Null(kept.BackwardWorkRatio);
    }
}

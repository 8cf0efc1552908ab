using System.Text.Json.Nodes;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Tuning;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The tuner's memory fallbacks (issue 14 item 5): memory-centric tiling and activation checkpoints in CPU RAM, searched
/// where a candidate overflows GPU memory and the executor runs them, kept when the user fixed them. Anchored on the
/// literature's shapes (Data/anchors/literature.json): the paper's 1T on one DGX-2, DeepSpeed issue 1776's 50B.
/// </summary>
public class TunerMemoryFallbacksTests
{
    private static readonly JsonNode Paper = LiteratureAnchors.Section("zero_infinity_paper");
    private static readonly JsonNode Issue1776 = LiteratureAnchors.Section("deepspeed_issue_1776");
    private static readonly ModelSpec OneT = ModelCatalog.Default.Load(Paper.Text("model"));
    private static readonly HardwareProfile Dgx2 = ProfileCatalog.Default.Load(Paper.Text("single_node_profile"));

    /// <summary>A small search (micro-batch 1, no accumulation): the structures are what these tests are about.</summary>
    private static TuneRequest OneTRequest(TrainingSettings fixedSettings) => new()
    {
        Model = OneT, Hardware = Dgx2, Base = fixedSettings, MaxMicroBatch = 1, MaxGradAccumulation = 1, Budget = 300,
    };

    private static TrainingSettings OnDeepSpeed => new() { Executor = ExecutorKind.DeepSpeed, NvmePath = "/nvme", Precision = Precision.Fp16 };

    private static IEnumerable<Candidate> Reported(TuneResult r) =>
        new[] { r.Best, r.DeepSpeedBest }.OfType<Candidate>().Concat(r.Alternatives).Concat(r.ParetoFront).Concat(r.Baselines.Values);

    private static bool UsesFallback(TrainingSettings s) => s.TilingFactor > 1 || (s.ActivationOffload == OffloadTier.Cpu && s.ActivationCheckpointing);

    [Fact]
    public void Given_the_papers_1t_on_one_dgx2_under_deepspeed_When_tuned_Then_a_plan_fits_by_tiling_or_cpu_checkpoints_that_untiled_on_device_does_not()
    {
        var result = Tuner.Tune(OneTRequest(OnDeepSpeed));

        var best = Assert.IsType<Candidate>(result.Best);
        Assert.True(UsesFallback(best.Settings), Tuner.Describe(best.Settings));
        Assert.True(best.GpuPeak <= Dgx2.Gpu!.Memory * (1 - TuneRequest.DefaultMemoryHeadroom));
        // The same plan untiled with checkpoints on the device does not fit the GPU: the fallback is what makes it fit.
        var plain = best.Settings with { TilingFactor = 1, ActivationOffload = OffloadTier.None };
        var plan = TrainingPlanner.Plan(OneT, Dgx2, plain, new PlanOptions { Simulate = false });
        Assert.False(plan.Feasible && plan.Memory.Gpu.Peak <= Dgx2.Gpu.Memory * (1 - TuneRequest.DefaultMemoryHeadroom));
        Assert.Contains(result.Explanation, l => l.Contains("chosen because", StringComparison.Ordinal)
            && (l.Contains("--tiling-factor", StringComparison.Ordinal) || l.Contains("--offload-activations cpu", StringComparison.Ordinal)));
        Assert.NotNull(result.DeepSpeedBest);
    }

    [Fact]
    public void Given_no_tiling_and_checkpoints_on_the_device_chosen_by_the_user_When_tuned_Then_no_candidate_tiles_or_moves_checkpoints()
    {
        // --tiling-factor 1 and --offload-activations none given on the command line: the defaults' values, but choices.
        var result = Tuner.Tune(OneTRequest(OnDeepSpeed) with { TilingGiven = true, ActivationOffloadGiven = true });

        Assert.DoesNotContain(Reported(result), c => UsesFallback(c.Settings));
        Assert.Null(result.Best); // the paper's 1T fits one DGX-2 only with one of them
    }

    [Fact]
    public void Given_a_tiled_choice_When_explained_Then_it_names_the_untiled_need_and_the_factor()
    {
        var result = Tuner.Tune(OneTRequest(OnDeepSpeed));

        var tiled = Reported(result).FirstOrDefault(c => c.Settings.TilingFactor > 1);
        Assert.NotNull(tiled);
        if (result.Best!.Settings.TilingFactor > 1)
            Assert.Contains(result.Explanation, l => l.Contains($"--tiling-factor {result.Best.Settings.TilingFactor}), chosen because untiled", StringComparison.Ordinal)
                                                     && l.Contains("TiledLinear", StringComparison.Ordinal));
        // The factor is the smallest that fits the card, or twice it where the headroom wanted more.
        var untiled = tiled.Settings with { TilingFactor = 1 };
        int smallest = MemoryCentricTiling.SmallestFittingFactor(OneT, Dgx2, untiled) ?? 0;
        Assert.Contains(tiled.Settings.TilingFactor, new[] { smallest, smallest * 2 });
    }

    [Fact]
    public void Given_issue_1776s_50b_at_a_fixed_micro_batch_26_When_tuned_Then_checkpoints_go_to_cpu_ram()
    {
        var model = ModelCatalog.Default.Load(Issue1776.Text("model")) with
        {
            NumHeads = Issue1776.Int("heads"), NumKvHeads = Issue1776.Int("heads"), Dropout = Issue1776.Number("dropout"),
        };
        int micro = Issue1776.Int("micro_batch");
        var result = Tuner.Tune(new TuneRequest
        {
            Model = model, Hardware = Dgx2, Base = OnDeepSpeed with { EagerAttention = true }, MicroBatch = micro, MaxGradAccumulation = 1, Budget = 300,
        });

        var best = Assert.IsType<Candidate>(result.Best);
        Assert.Equal(micro, best.Settings.MicroBatch);
        Assert.Equal(OffloadTier.Cpu, best.Settings.ActivationOffload);
        Assert.True(best.Settings.ActivationCheckpointing);
        Assert.All(Reported(result), c => Assert.Equal(micro, c.Settings.MicroBatch));
        Assert.Contains(result.Explanation, l => l.StartsWith("Activation checkpoints in CPU RAM (--offload-activations cpu", StringComparison.Ordinal));
    }

    [Fact]
    public void Given_a_user_fixed_tiling_factor_When_tuned_Then_every_candidate_keeps_it_and_the_explanation_says_it_was_given()
    {
        var result = Tuner.Tune(OneTRequest(OnDeepSpeed with { TilingFactor = 8 }));

        Assert.NotNull(result.Best);
        Assert.All(Reported(result), c => Assert.Equal(8, c.Settings.TilingFactor));
        Assert.Contains(result.Explanation, l => l.Contains("--tiling-factor 8 as given (fixed, not searched)", StringComparison.Ordinal));
    }

    [Fact]
    public void Given_a_user_fixed_cpu_checkpoint_placement_When_tuned_Then_every_candidate_checkpoints_to_cpu_ram()
    {
        var result = Tuner.Tune(OneTRequest(OnDeepSpeed with { ActivationOffload = OffloadTier.Cpu, ActivationCheckpointing = true }));

        Assert.NotNull(result.Best);
        Assert.All(Reported(result), c => Assert.True(c.Settings is { ActivationOffload: OffloadTier.Cpu, ActivationCheckpointing: true }, Tuner.Describe(c.Settings)));
    }

    [Fact]
    public void Given_the_1t_on_one_gpu_When_tuned_for_aios_Then_tiling_is_never_chosen_though_deepspeed_chooses_it()
    {
        // One GPU (the bundled engine's), so that only the executor differs.
        var aios = Tuner.Tune(OneTRequest(new TrainingSettings { Executor = ExecutorKind.Aios, NvmePath = "/nvme", GpusPerNode = 1 }));
        var deepSpeed = Tuner.Tune(OneTRequest(OnDeepSpeed with { GpusPerNode = 1 }));

        Assert.Contains(Reported(deepSpeed), c => c.Settings.TilingFactor > 1);
        Assert.All(Reported(aios), c => Assert.Equal(1, c.Settings.TilingFactor));
        // Whatever it chose, the executor runs it.
        Assert.All(Reported(aios).Concat(Reported(deepSpeed)), c => Assert.Empty(MemoryCentricTiling.Problems(c.Settings)));
        if (aios.Best is null)
            Assert.Contains(aios.Explanation, l => l.StartsWith("Not tried, as the executor does not run them", StringComparison.Ordinal));
    }

    [Fact]
    public void Given_a_model_that_fits_on_the_device_When_tuned_Then_no_candidate_tiles_or_moves_checkpoints()
    {
        var result = Tuner.Tune(new TuneRequest
        {
            Model = ModelCatalog.Default.Load("gpt2"), Hardware = ProfileCatalog.Default.Load("h200-1x"),
            Base = new TrainingSettings { Executor = ExecutorKind.DeepSpeed, NvmePath = "/nvme", SeqLen = 512 }, MaxMicroBatch = 4, MaxGradAccumulation = 2, Budget = 600,
        });

        Assert.NotNull(result.Best);
        Assert.DoesNotContain(Reported(result), c => UsesFallback(c.Settings));
    }

    [Fact]
    public void Given_a_tiled_deepspeed_plan_When_its_config_is_built_Then_a_note_says_the_config_has_no_key_for_tiling_and_cpu_checkpoints_are_mapped()
    {
        var s = OnDeepSpeed with { TilingFactor = 2, ActivationCheckpointing = true, ActivationOffload = OffloadTier.Cpu };

        Assert.Contains(DeepSpeedConfig.Notes(s), n => n.Contains("--tiling-factor 2", StringComparison.Ordinal) && n.Contains("TiledLinear", StringComparison.Ordinal));
        Assert.DoesNotContain(DeepSpeedConfig.Notes(s with { TilingFactor = 1 }), n => n.Contains("TiledLinear", StringComparison.Ordinal));
        var config = DeepSpeedConfig.Build(OneT, s, 16, 1, null);
        Assert.True(config["activation_checkpointing"]!["cpu_checkpointing"]!.GetValue<bool>());
    }

    [Fact]
    public void Given_a_fixed_micro_batch_that_does_not_divide_the_global_batch_When_tuned_Then_it_is_refused_naming_the_flag()
    {
        var result = Tuner.Tune(new TuneRequest { Model = OneT, Hardware = Dgx2, Base = OnDeepSpeed, MicroBatch = 3, GlobalBatch = 32 });

        Assert.Null(result.Best);
        Assert.Contains(result.Problems, p => p.Flag == "--micro-batch");
    }
}

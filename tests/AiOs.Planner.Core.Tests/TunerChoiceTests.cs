using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Tuning;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>What the tuner promises about its choice: DeepSpeed-runnable output, memory headroom, the global batch, bad fixed settings.</summary>
public class TunerChoiceTests
{
    private static readonly ModelSpec Gpt2 = ModelCatalog.Default.Load("gpt2");
    private static readonly ModelSpec Gpt2Xl = ModelCatalog.Default.Load("gpt2-xl");
    private static readonly HardwareProfile Rtx = ProfileCatalog.Default.Load("rtx4090-64gb-pcie4");
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x");

    private static TuneResult Tune(ModelSpec model, HardwareProfile hw, int budget = 1200, double headroom = TuneRequest.DefaultMemoryHeadroom,
        int? globalBatch = null, TrainingSettings? fixedSettings = null) =>
        Tuner.Tune(new TuneRequest
        {
            Model = model, Hardware = hw, Budget = budget, MemoryHeadroom = headroom, GlobalBatch = globalBatch,
            Base = fixedSettings ?? new TrainingSettings { NvmePath = "/nvme" },
        });

    private static IEnumerable<Candidate> Reported(TuneResult r) =>
        new[] { r.Best, r.DeepSpeedBest }.OfType<Candidate>().Concat(r.Alternatives).Concat(r.ParetoFront);

    [Fact]
    public void Given_an_overlapped_best_When_tuned_Then_the_deepspeed_best_is_the_fastest_deepspeed_runnable_candidate()
    {
        var result = Tune(Gpt2Xl, Rtx);

        Assert.Equal(StepSchedule.Overlapped, result.Best!.Settings.Schedule);
        var ds = Assert.IsType<Candidate>(result.DeepSpeedBest);
        Assert.True(Tuner.RunsOnDeepSpeed(ds.Settings));
        Assert.All(Reported(result).Where(c => Tuner.RunsOnDeepSpeed(c.Settings)), c => Assert.True(c.TokensPerSecond <= ds.TokensPerSecond));
        Assert.All(result.Baselines.Values, b => Assert.Equal(StepSchedule.DeepSpeed, b.Settings.Schedule));
        Assert.Contains(result.Explanation, l => l.Contains("DeepSpeed has no overlapped schedule", StringComparison.Ordinal));
    }

    [Fact]
    public void Given_a_gpu_that_the_unguarded_best_fills_When_tuned_with_headroom_Then_every_choice_keeps_it()
    {
        var unguarded = Tune(Gpt2, H200, headroom: 0).Best!;
        // A GPU just 2% larger than that plan needs: it fits at 98%, which the default 5% headroom refuses.
        var tight = H200 with { Gpu = H200.Gpu! with { MemoryGib = unguarded.GpuPeak.Value * 1.02 / (1L << 30) } };
        Assert.True(Tune(Gpt2, tight, headroom: 0).Best!.GpuPeak.Value > tight.Gpu!.Memory.Value * 0.95);

        var guarded = Tune(Gpt2, tight);

        Assert.All(Reported(guarded), c => Assert.True(c.GpuPeak.Value <= tight.Gpu!.Memory.Value * 0.95, Tuner.Describe(c.Settings)));
        Assert.Equal(TuneRequest.DefaultMemoryHeadroom, guarded.MemoryHeadroom);
    }

    [Fact]
    public void Given_headroom_When_tuned_Then_a_near_limit_warning_appears_exactly_when_a_tier_is_above_one_minus_twice_it()
    {
        var unguarded = Tune(Gpt2, H200, headroom: 0).Best!;
        foreach (double share in new[] { 0.93, 0.6 })
        {
            var gpu = H200 with { Gpu = H200.Gpu! with { MemoryGib = unguarded.GpuPeak.Value / share / (1L << 30) } };
            var result = Tune(Gpt2, gpu);
            var best = result.Best!;
            bool near = best.GpuPeak.Value > gpu.Gpu!.Memory.Value * 0.9 || best.HostPeak.Value > gpu.Cpu.Ram.Value * 0.9;
            Assert.Equal(near, result.NearLimits.Any(l => l.StartsWith("The best plan", StringComparison.Ordinal)));
        }
    }

    [Fact]
    public void Given_a_fixed_global_batch_When_tuned_Then_every_candidate_has_exactly_that_many_sequences_per_step()
    {
        var dgx = ProfileCatalog.Default.Load("dgx-a100");
        var result = Tune(Gpt2, dgx, globalBatch: 96);

        Assert.Equal(96, result.GlobalBatch);
        Assert.All(Reported(result), c => Assert.Equal(96, c.SequencesPerStep));
        Assert.All(Reported(result), c => Assert.Equal(96L * c.Settings.SeqLen, c.TokensPerStep));
        Assert.All(Reported(result), c => Assert.Equal(96, c.Settings.MicroBatch * c.Settings.GradAccumulation * dgx.GpusPerNode));
        Assert.Contains(result.Explanation, l => l.StartsWith("Global batch: 96 sequences", StringComparison.Ordinal));
    }

    [Fact]
    public void Given_no_fixed_global_batch_When_tuned_Then_the_explanation_states_the_one_chosen()
    {
        var result = Tune(Gpt2Xl, H200);
        var best = result.Best!;
        Assert.Equal((long)best.Settings.MicroBatch * best.Settings.GradAccumulation, best.SequencesPerStep);
        Assert.Contains(result.Explanation, l => l.StartsWith($"Global batch: {best.SequencesPerStep:N0} sequences", StringComparison.Ordinal) && l.Contains("--global-batch", StringComparison.Ordinal));
    }

    [Fact]
    public void Given_a_global_batch_that_the_gpus_do_not_divide_When_tuned_Then_the_problem_names_the_flag()
    {
        var result = Tune(Gpt2, ProfileCatalog.Default.Load("dgx-a100"), globalBatch: 100);
        Assert.Null(result.Best);
        var problem = Assert.Single(result.Problems);
        Assert.Equal("--global-batch", problem.Flag);
        Assert.Contains("multiple of the 8 GPUs", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_more_gpus_than_the_profile_has_When_tuned_Then_the_gpus_problem_is_reported_not_an_overflow()
    {
        var result = Tune(Gpt2Xl, H200, fixedSettings: new TrainingSettings { GpusPerNode = 2 });

        Assert.Null(result.Best);
        Assert.Contains(result.Problems, p => p.Flag == "--gpus");
        Assert.DoesNotContain(result.Explanation, l => l.Contains("overflows", StringComparison.Ordinal));
        Assert.Contains("--gpus", result.Explanation[0], StringComparison.Ordinal);
        Assert.Equal(0, result.Evaluated);
    }

    [Theory]
    [InlineData(-0.1)]
    [InlineData(5)]
    [InlineData(double.NaN)]
    public void Given_a_headroom_outside_zero_to_a_half_When_tuned_Then_the_problem_names_the_flag(double headroom)
    {
        var result = Tune(Gpt2, H200, headroom: headroom);
        Assert.Equal("--memory-headroom", Assert.Single(result.Problems).Flag);
    }

    [Fact]
    public void Given_the_same_inputs_When_asked_what_if_Then_the_cell_equals_the_tuners_best()
    {
        var request = new WhatIfRequest { Models = [Gpt2Xl], Hardware = [Rtx], Upgrades = false, Base = new TrainingSettings { NvmePath = "/nvme" }, Budget = 800 };

        var cell = Assert.Single(WhatIf.Run(request).Cells);
        var tuned = Tuner.Tune(new TuneRequest { Model = Gpt2Xl, Hardware = Rtx, Base = new TrainingSettings { NvmePath = "/nvme" }, Budget = 800 }).Best!;

        Assert.Equal(tuned.TokensPerSecond, cell.TokensPerSecond);
        Assert.Equal(tuned.SequencesPerStep, cell.SequencesPerStep);
        Assert.Equal(Tuner.Describe(tuned.Settings), cell.Settings);
    }

    [Fact]
    public void Given_no_limits_set_When_what_if_and_tune_are_built_Then_their_search_defaults_are_the_same()
    {
        var whatIf = new WhatIfRequest { Models = [Gpt2], Hardware = [H200] };
        var tune = new TuneRequest { Model = Gpt2, Hardware = H200 };
        Assert.Equal((tune.Budget, tune.MaxGradAccumulation, tune.MaxMicroBatch, tune.GlobalBatch, tune.MemoryHeadroom),
            (whatIf.Budget, whatIf.MaxGradAccumulation, whatIf.MaxMicroBatch, whatIf.GlobalBatch, whatIf.MemoryHeadroom));
    }
}

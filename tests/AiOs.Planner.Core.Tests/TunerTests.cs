using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Tuning;

namespace AiOs.Planner.Core.Tests;

public class TunerTests
{
    private static readonly ModelSpec Gpt2Xl = ModelCatalog.Default.Load("gpt2-xl");
    private static readonly HardwareProfile Rtx = ProfileCatalog.Default.Load("rtx4090-64gb-pcie4");

    private static TuneResult Tune(ModelSpec model, HardwareProfile hw, int budget = 1500, TuneObjective objective = TuneObjective.Throughput) =>
        Tuner.Tune(new TuneRequest { Model = model, Hardware = hw, Budget = budget, Objective = objective, Base = new TrainingSettings { NvmePath = "/nvme" } });

    [Fact]
    public void Given_a_model_that_needs_offload_When_tuned_Then_the_best_fits_and_beats_every_alternative()
    {
        var result = Tune(ModelCatalog.Default.Load("llama-2-7b"), Rtx);
        var best = Assert.IsType<Candidate>(result.Best);
        Assert.True(best.Feasible);
        Assert.NotEqual(OffloadTier.None, best.Settings.OptimizerOffload);
        Assert.All(result.Alternatives, a => Assert.True(a.TokensPerSecond <= best.TokensPerSecond));
        var plan = TrainingPlanner.Plan(ModelCatalog.Default.Load("llama-2-7b"), Rtx, best.Settings);
        Assert.True(plan.Feasible, string.Join("; ", plan.Problems));
        Assert.Equal(best.StepTime, plan.Step!.Time);
    }

    [Fact]
    public void Given_a_tuned_result_When_checking_the_front_Then_faster_points_use_more_host_ram()
    {
        var front = Tune(Gpt2Xl, Rtx).ParetoFront;
        Assert.NotEmpty(front);
        for (int i = 1; i < front.Count; i++)
        {
            Assert.True(front[i].TokensPerSecond < front[i - 1].TokensPerSecond);
            Assert.True(front[i].HostPeak < front[i - 1].HostPeak);
        }
    }

    [Fact]
    public void Given_the_tuners_choice_When_compared_with_deepspeed_defaults_Then_it_is_at_least_as_fast()
    {
        var result = Tune(Gpt2Xl, Rtx);
        var best = result.Best!;
        var defaults = new TrainingSettings { NvmePath = "/nvme" } with
        {
            ZeroStage = best.Settings.ZeroStage, ParamOffload = best.Settings.ParamOffload, OptimizerOffload = best.Settings.OptimizerOffload,
            MicroBatch = best.Settings.MicroBatch, GradAccumulation = best.Settings.GradAccumulation,
            ActivationCheckpointing = best.Settings.ActivationCheckpointing, BufferSize = best.Settings.BufferSize,
        };
        var plan = TrainingPlanner.Plan(Gpt2Xl, Rtx, defaults);
        if (plan.Feasible) Assert.True(best.TokensPerSecond >= plan.Step!.TokensPerSecond);
        Assert.Contains(result.Explanation, l => l.StartsWith("Best:", StringComparison.Ordinal));
    }

    [Fact]
    public void Given_the_memory_objective_When_tuned_Then_it_uses_no_more_gpu_memory_than_the_throughput_choice()
    {
        var fast = Tune(Gpt2Xl, Rtx).Best!;
        var small = Tune(Gpt2Xl, Rtx, objective: TuneObjective.Memory).Best!;
        Assert.True(small.GpuPeak <= fast.GpuPeak);
    }

    [Fact]
    public void Given_a_model_that_cannot_fit_When_tuned_Then_there_is_no_best_and_the_explanation_says_why()
    {
        var tiny = Rtx with { Drives = [], Cpu = Rtx.Cpu with { RamGib = 8 } };
        var result = Tune(ModelCatalog.Default.Load("llama-2-70b"), tiny, budget: 500);
        Assert.Null(result.Best);
        Assert.Contains("Nothing fits", result.Explanation[0]);
    }

    [Fact]
    public void Given_the_same_request_When_tuned_twice_Then_the_choice_is_the_same()
    {
        Assert.Equal(Tune(Gpt2Xl, Rtx, budget: 800).Best!.Settings, Tune(Gpt2Xl, Rtx, budget: 800).Best!.Settings);
    }

    [Fact]
    public void Given_a_tuned_candidate_When_timed_Then_the_fast_timing_is_the_kernels()
    {
        var best = Tune(Gpt2Xl, Rtx, budget: 600).Best!;
        Assert.Equal(Simulator.Predict(Gpt2Xl, Rtx, best.Settings).Time, best.StepTime);
    }
}

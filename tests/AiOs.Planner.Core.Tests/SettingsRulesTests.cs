using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

public class SettingsRulesTests
{
    private static readonly ModelSpec Gpt2 = ModelCatalog.Default.Load("gpt2");
    private static readonly HardwareProfile Rtx = ProfileCatalog.Default.Load("rtx4090-64gb-pcie4");

    private static IReadOnlyList<SettingsProblem> Check(TrainingSettings s) => SettingsRules.Check(s, Gpt2, Rtx);

    [Fact]
    public void Given_micro_batch_zero_When_checked_Then_the_flag_to_change_is_named()
    {
        var problem = Assert.Single(Check(new TrainingSettings { MicroBatch = 0 }));
        Assert.Equal("--micro-batch", problem.Flag);
    }

    [Fact]
    public void Given_nvme_offload_without_a_path_When_checked_Then_the_path_flag_is_named()
    {
        var s = SettingsRules.Resolve(new TrainingSettings { OptimizerOffload = OffloadTier.Nvme }, stageGiven: false);
        Assert.Equal(ZeroStage.Infinity, s.ZeroStage);
        Assert.Contains(Check(s), p => p.Flag == "--nvme-offload-path");
    }

    [Fact]
    public void Given_parameter_offload_under_zero2_When_checked_Then_the_stage_flag_is_named()
    {
        var problems = Check(new TrainingSettings { ZeroStage = ZeroStage.Zero2, ParamOffload = OffloadTier.Cpu });
        Assert.Contains(problems, p => p.Flag == "--zero-stage" && p.Message.Contains("parameter offload"));
    }

    [Fact]
    public void Given_offload_flags_without_a_stage_When_resolved_Then_the_stage_deepspeed_needs_is_chosen()
    {
        Assert.Equal(ZeroStage.Zero2, SettingsRules.Resolve(new TrainingSettings { OptimizerOffload = OffloadTier.Cpu }, false).ZeroStage);
        Assert.Equal(ZeroStage.Infinity, SettingsRules.Resolve(new TrainingSettings { ParamOffload = OffloadTier.Cpu }, false).ZeroStage);
        Assert.Equal(ZeroStage.None, SettingsRules.Resolve(new TrainingSettings { OptimizerOffload = OffloadTier.Cpu }, true).ZeroStage);
    }

    [Fact]
    public void Given_a_buffer_smaller_than_the_largest_tensor_When_checked_Then_buffer_size_is_named()
    {
        var s = new TrainingSettings { ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.Nvme, NvmePath = "/x", BufferSize = 1_000_000 };
        Assert.Contains(Check(s), p => p.Flag == "--buffer-size");
    }

    [Fact]
    public void Given_a_misaligned_block_size_When_checked_Then_the_aio_flag_is_named()
    {
        Assert.Contains(Check(new TrainingSettings { Aio = new AioSettings { BlockSize = new Bytes(1000) } }), p => p.Flag == "--aio-block-size");
    }

    [Fact]
    public void Given_more_gpus_than_the_node_has_When_checked_Then_gpus_is_named()
    {
        Assert.Contains(Check(new TrainingSettings { GpusPerNode = 2 }), p => p.Flag == "--gpus");
    }

    [Fact]
    public void Given_a_model_too_big_for_the_gpu_When_planned_Then_the_plan_is_infeasible_with_advice()
    {
        var plan = TrainingPlanner.Plan(ModelCatalog.Default.Load("llama-2-7b"), Rtx, new TrainingSettings { MicroBatch = 4 });
        Assert.False(plan.Feasible);
        var problem = Assert.Single(plan.CapacityProblems);
        Assert.Contains("GPU memory", problem);
        Assert.Contains("--", problem);
    }

    [Fact]
    public void Given_llama_7b_offloaded_to_nvme_on_a_4090_When_planned_Then_it_fits()
    {
        var s = SettingsRules.Resolve(new TrainingSettings
        {
            ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Nvme, NvmePath = "/nvme",
            ActivationCheckpointing = true, MicroBatch = 1, BufferSize = 300_000_000, SubGroupSize = 100_000_000, // the engine swaps whole blocks: 262M elements
        }, stageGiven: false);
        var plan = TrainingPlanner.Plan(ModelCatalog.Default.Load("llama-2-7b"), Rtx, s);
        Assert.True(plan.Feasible, string.Join("; ", plan.Problems));
    }
}

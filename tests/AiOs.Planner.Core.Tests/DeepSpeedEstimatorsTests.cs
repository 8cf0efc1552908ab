using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Core.Tests;

/// <summary>The estimators against DeepSpeed's source today (deepspeedai/DeepSpeed edaa722, 2026-08-22).</summary>
public class DeepSpeedEstimatorsTests
{
    private static ModelSpec Model(string name) => ModelCatalog.Default.Load(name);

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(8)]
    public void Given_zero2_without_offload_When_estimated_Then_gpu_bytes_are_2p_plus_18p_over_n(int gpus)
    {
        // stage_1_and_2.py: gpu_mem = 2 * total_params + int(18 * total_params / total_gpus); the old 4P + 16P/N differs from N = 2 on.
        long p = Model("llama-2-7b").TotalParameters;

        var (_, gpu) = DeepSpeedEstimators.Zero2(p, gpus, 1, cpuOffload: false);

        Assert.Equal(2 * p + (long)(18.0 * p / gpus), gpu);
    }

    [Fact]
    public void Given_zero2_on_eight_gpus_When_planned_for_deepspeed_Then_model_states_follow_todays_estimator()
    {
        var model = Model("llama-2-7b");
        var plan = MemoryPlanner.Plan(model, ProfileCatalog.Default.Load("dgx-a100"),
            new TrainingSettings { Executor = ExecutorKind.DeepSpeed, ZeroStage = ZeroStage.Zero2, GpusPerNode = 8 });

        Assert.Equal(DeepSpeedEstimators.Zero2(model.TotalParameters, 8, 1, cpuOffload: false).GpuBytes, plan.ModelStatesGpu.Value, 8.0 * 18);
    }

    [Fact]
    public void Given_a_llama_When_the_largest_module_is_counted_Then_it_is_a_single_projection_or_embedding_not_a_block()
    {
        var m = Model("llama-2-70b");

        long largest = DeepSpeedModules.LargestModuleParameters(m);

        Assert.Equal(Math.Max((long)m.VocabSize * m.HiddenSize, (long)m.HiddenSize * m.FfnSize), largest);
        Assert.True(largest < m.LayerParameters);
    }

    [Fact]
    public void Given_gpt2_When_the_largest_module_is_counted_Then_it_is_the_token_embedding()
    {
        var m = Model("gpt2-xl");

        Assert.Equal((long)m.VocabSize * m.HiddenSize, DeepSpeedModules.LargestModuleParameters(m));
    }
}

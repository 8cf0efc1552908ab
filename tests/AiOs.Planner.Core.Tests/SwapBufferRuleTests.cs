using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Core.Tests;

/// <summary>One rule for buffer_size (issue 14 item 4): the buffers hold the largest swapped tensor; the default is sized to it.</summary>
public class SwapBufferRuleTests
{
    // 128K vocabulary × 4096: the embedding alone (525M elements) is over five times DeepSpeed's default 1e8.
    private static readonly ModelSpec Llama3 = ModelCatalog.Default.Load("llama-3-8b");
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x");

    private static TrainingSettings Offloaded(OffloadTier tier, ExecutorKind executor) => new()
    {
        ZeroStage = ZeroStage.Zero3, ParamOffload = tier, OptimizerOffload = tier, NvmePath = tier == OffloadTier.Nvme ? "/x" : null,
        Executor = executor, ActivationCheckpointing = true, MicroBatch = 1, SeqLen = 1024,
    };

    [Theory]
    [InlineData(OffloadTier.Cpu, ExecutorKind.Aios)]
    [InlineData(OffloadTier.Nvme, ExecutorKind.Aios)]
    [InlineData(OffloadTier.Nvme, ExecutorKind.DeepSpeed)]
    public void Given_a_model_whose_largest_tensor_exceeds_1e8_When_the_default_is_sized_Then_the_plan_has_no_buffer_problem(OffloadTier tier, ExecutorKind executor)
    {
        var s = Offloaded(tier, executor);
        Assert.True(SwapBufferRule.LargestSwapped(Llama3, executor) > s.BufferSize);

        var sized = SwapBufferRule.SizeDefault(Llama3, s, given: false);

        Assert.True(sized.Settings.BufferSize >= SwapBufferRule.LargestSwapped(Llama3, executor));
        Assert.Single(sized.Notes);
        Assert.DoesNotContain(SettingsRules.Check(sized.Settings, Llama3, H200), p => p.Flag == "--buffer-size");
    }

    [Fact]
    public void Given_cpu_parameter_offload_under_aios_When_buffer_size_is_1e8_Then_the_plan_refuses_it_as_the_engine_does()
    {
        // The case: the engine refused "buffer_size 100000000 … smaller than the largest unit" while the plan said feasible.
        var s = Offloaded(OffloadTier.Cpu, ExecutorKind.Aios);

        var problem = Assert.Single(SettingsRules.Check(s, Llama3, H200), p => p.Flag == "--buffer-size");

        Assert.Contains($"--buffer-size {SwapBufferRule.Required(Llama3, ExecutorKind.Aios)}", problem.Message);
        Assert.False(TrainingPlanner.Plan(Llama3, H200, s, new PlanOptions { Simulate = false }).Feasible);
    }

    [Theory]
    [InlineData(OffloadTier.Cpu, ExecutorKind.Aios)]
    [InlineData(OffloadTier.Nvme, ExecutorKind.Aios)]
    [InlineData(OffloadTier.Nvme, ExecutorKind.DeepSpeed)]
    public void Given_an_explicit_buffer_too_small_When_planned_Then_the_fix_names_the_least_value_that_works(OffloadTier tier, ExecutorKind executor)
    {
        var s = Offloaded(tier, executor) with { BufferSize = 50_000_000 };

        var fix = Assert.Single(PlanAdvice.BufferSize(Llama3, s));
        var fixedSettings = fix.Apply(s);

        long largest = SwapBufferRule.LargestSwapped(Llama3, executor);
        Assert.Equal($"--buffer-size {fixedSettings.BufferSize}", fix.Flags);
        Assert.InRange(fixedSettings.BufferSize, largest, largest + 999_999);
        Assert.DoesNotContain(SettingsRules.Check(fixedSettings, Llama3, H200), p => p.Flag == "--buffer-size");
        Assert.Contains(SettingsRules.Check(fixedSettings with { BufferSize = largest - 1 }, Llama3, H200), p => p.Flag == "--buffer-size");
    }

    [Fact]
    public void Given_a_given_value_When_sized_Then_it_is_kept_for_the_plan_to_check()
    {
        var s = Offloaded(OffloadTier.Cpu, ExecutorKind.Aios);

        Assert.Equal(s, SwapBufferRule.SizeDefault(Llama3, s, given: true).Settings);
    }

    [Fact]
    public void Given_nothing_offloaded_When_sized_Then_the_default_stays_deepspeeds()
    {
        var s = new TrainingSettings();

        var sized = SwapBufferRule.SizeDefault(Llama3, s, given: false);

        Assert.Equal(SwapBufferRule.DeepSpeedDefault, sized.Settings.BufferSize);
        Assert.Empty(sized.Notes);
    }

    [Fact]
    public void Given_a_small_model_When_sized_Then_the_default_stays_deepspeeds()
    {
        var gpt2 = ModelCatalog.Default.Load("gpt2");

        Assert.Equal(SwapBufferRule.DeepSpeedDefault, SwapBufferRule.Default(gpt2, ExecutorKind.Aios));
    }
}

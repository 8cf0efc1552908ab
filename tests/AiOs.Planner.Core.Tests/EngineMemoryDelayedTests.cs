using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Core.Tests;

/// <summary>The delayed schedule's host memory: its pending update reads one step's gradients while the next accumulates into a second store.</summary>
public class EngineMemoryDelayedTests
{
    private static readonly ModelSpec Xl = ModelCatalog.Default.Load("gpt2-xl");
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x");

    [Theory]
    [InlineData(Precision.Bf16)]
    [InlineData(Precision.Fp32)]
    public void Given_gradients_in_ram_When_the_schedule_is_delayed_Then_the_host_holds_a_second_gradient_store_pinned_like_the_first(Precision precision)
    {
        var s = new TrainingSettings
        {
            ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, ZeroStage = ZeroStage.Infinity, ActivationCheckpointing = true,
            MicroBatch = 8, SeqLen = 1024, Precision = precision, Schedule = StepSchedule.Overlapped,
        };
        var overlapped = EngineMemory.Plan(Xl, H200, s);
        var delayed = EngineMemory.Plan(Xl, H200, s with { Schedule = StepSchedule.Delayed });

        var first = overlapped.CpuPinned.Of("gradients");
        Assert.True(first.Value > 0);
        Assert.Equal(first, delayed.CpuPinned.Of("gradients of the pending update"));
        Assert.Equal(overlapped.CpuPeak + first, delayed.CpuPeak);
    }
}

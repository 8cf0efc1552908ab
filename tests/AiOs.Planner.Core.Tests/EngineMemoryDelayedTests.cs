using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

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
        Assert.Equal(overlapped.CpuPeak + first + delayed.CpuPinned.Of(EngineMemory.DelayedSpareParametersItem), delayed.CpuPeak);
    }

    [Theory]
    [InlineData(Precision.Bf16, 2)]
    [InlineData(Precision.Fp32, 4)]
    public void Given_parameters_in_ram_When_the_schedule_is_delayed_Then_the_host_holds_a_spare_copy_pinned_like_the_parameters(Precision precision, int bytes)
    {
        var s = new TrainingSettings
        {
            ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, ZeroStage = ZeroStage.Infinity, ActivationCheckpointing = true,
            MicroBatch = 8, SeqLen = 1024, Precision = precision, Schedule = StepSchedule.Delayed,
        };
        var delayed = EngineMemory.Plan(Xl, H200, s);
        var overlapped = EngineMemory.Plan(Xl, H200, s with { Schedule = StepSchedule.Overlapped });

        Bytes spare = delayed.CpuPinned.Of(EngineMemory.DelayedSpareParametersItem);
        Assert.Equal(delayed.CpuPinned.Of("parameters"), spare);
        Assert.True(spare.Value >= Xl.TotalParameters * bytes, $"spare copy {spare}");
        Assert.Equal(Bytes.Zero, overlapped.CpuPinned.Of(EngineMemory.DelayedSpareParametersItem));
        // Parameters on the device or in NVMe files keep the serial write-back: no spare copy.
        Assert.Equal(Bytes.Zero, EngineMemory.Plan(Xl, H200, s with { ParamOffload = OffloadTier.None }).CpuPinned.Of(EngineMemory.DelayedSpareParametersItem));
        Assert.Equal(Bytes.Zero, EngineMemory.Plan(Xl, H200, s with { ParamOffload = OffloadTier.Nvme, NvmePath = "/nvme", MaxInCpu = 0 }).CpuPinned.Of(EngineMemory.DelayedSpareParametersItem));
    }
}

using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Core.Tests;

/// <summary>How the simulator prices the delayed schedule's steady state: the previous step's CPU optimizer beside this step's passes.</summary>
public class DelayedScheduleSimulationTests
{
    private static readonly ModelSpec Gpt2Xl = ModelCatalog.Default.Load("gpt2-xl");
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x");

    /// <summary>gpt2-xl with parameters and optimizer in RAM, micro-batch 8, checkpointing: issue 16's offloaded case.</summary>
    private static TrainingSettings Offloaded(StepSchedule schedule) => new()
    {
        ZeroStage = ZeroStage.Zero3, ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, MicroBatch = 8, SeqLen = 1024,
        ActivationCheckpointing = true, Precision = Precision.Bf16, Executor = ExecutorKind.Aios, Schedule = schedule,
    };

    private static HardwareProfile WithAdam(double paramsPerSecond) => H200 with { Cpu = H200.Cpu with { AdamParamsPerS = new Figure(paramsPerSecond) } };

    private static double Step(HardwareProfile hw, StepSchedule schedule) => Simulator.Predict(Gpt2Xl, hw, Offloaded(schedule)).Time.Seconds;

    [Fact]
    public void Given_an_optimizer_bound_step_When_priced_Then_delayed_is_faster_than_overlapped_which_is_faster_than_deepspeed()
    {
        // 1.56 B parameters at 2 G/s: about 0.8 s of CPU Adam, longer than forward and backward. The write-back of θ is made
        // free here (parameters in RAM swap their double-buffered copies anyway): this is about what the overlap hides.
        HardwareProfile slow = WithFreeWriteBack(WithAdam(2e9));
        double deepspeed = Step(slow, StepSchedule.DeepSpeed), overlapped = Step(slow, StepSchedule.Overlapped), delayed = Step(slow, StepSchedule.Delayed);

        Assert.True(delayed < overlapped, $"delayed {delayed:F3} s, overlapped {overlapped:F3} s");
        Assert.True(overlapped < deepspeed, $"overlapped {overlapped:F3} s, deepspeed {deepspeed:F3} s");
        // The steady state is the longer of the passes and the update, not their sum: here the update, at its rate.
        double adam = Gpt2Xl.TotalParameters / 2e9;
        Assert.True(adam > deepspeed - adam, "the update, not the passes, bounds this step");
        Assert.Equal(adam, delayed, delayed * 0.03);
    }

    /// <summary><paramref name="hw"/> with a host memory bandwidth so high the write-back of θ costs nothing.</summary>
    private static HardwareProfile WithFreeWriteBack(HardwareProfile hw) => hw with { Cpu = hw.Cpu with { MemoryBandwidthGbps = new Figure(HardwareBounds.MaxMemoryGbps) } };

    [Fact]
    public void Given_a_negligible_cpu_optimizer_and_write_back_When_priced_Then_the_three_schedules_take_the_same_time()
    {
        HardwareProfile fast = WithFreeWriteBack(WithAdam(HardwareBounds.MaxAdamParamsPerS));
        double deepspeed = Step(fast, StepSchedule.DeepSpeed), delayed = Step(fast, StepSchedule.Delayed);

        Assert.Equal(deepspeed, delayed, deepspeed * 0.01);
        Assert.Equal(deepspeed, Step(fast, StepSchedule.Overlapped), deepspeed * 0.01);
    }

    [Fact]
    public void Given_the_delayed_schedule_When_the_first_step_is_built_Then_its_update_waits_for_backward_and_a_steady_step_does_not()
    {
        TrainingSettings s = Offloaded(StepSchedule.Delayed);
        Operation FirstUpdate(bool first) => StepScheduler.Build(Gpt2Xl, H200, s, first, ProgramShape.Engine).Ops.First(o => o.Phase == StepPhase.Optimizer);

        Assert.NotEmpty(FirstUpdate(first: true).Deps);
        Assert.Empty(FirstUpdate(first: false).Deps);
    }

    [Fact]
    public void Given_the_delayed_schedule_with_the_optimizer_on_the_device_When_validated_Then_it_names_the_flag_and_the_fix()
    {
        var problems = SettingsValidator.Problems(new TrainingSettings { Schedule = StepSchedule.Delayed });

        var p = Assert.Single(problems, x => x.ToString().Contains("delayed", StringComparison.Ordinal));
        Assert.Contains("--schedule", p.ToString());
        Assert.Contains("--offload-optimizer cpu|nvme", p.ToString());
        Assert.Empty(SettingsValidator.Problems(new TrainingSettings { Schedule = StepSchedule.Delayed, ZeroStage = ZeroStage.Zero3, OptimizerOffload = OffloadTier.Cpu }));
    }

    [Theory]
    [InlineData(OffloadTier.Cpu, OffloadTier.Cpu)]
    [InlineData(OffloadTier.Cpu, OffloadTier.Nvme)]
    [InlineData(OffloadTier.None, OffloadTier.Cpu)]
    [InlineData(OffloadTier.Nvme, OffloadTier.Nvme)]
    public void Given_a_steady_delayed_step_When_built_Then_one_write_back_of_theta_comes_after_every_other_operation(OffloadTier parameters, OffloadTier optimizer)
    {
        TrainingSettings s = Offloaded(StepSchedule.Delayed) with
        {
            // max_in_cpu 0: every unit's parameters live in its NVMe file.
            ParamOffload = parameters, OptimizerOffload = optimizer, GradientOffload = OffloadTier.Cpu, MaxInCpu = 0,
        };
        var ops = StepScheduler.Build(Gpt2Xl, H200, s, false, ProgramShape.Engine).Ops;

        Operation w = Assert.Single(ops, o => o.Kind == OpKind.MasterWriteBack);
        Assert.Equal((ResourceKind.Cpu, StepPhase.Optimizer), (w.Resource, w.Phase));
        Assert.Equal(ops.Count - 1, w.Id);
        // Every other operation is an ancestor: the write-back waits for the passes and the update.
        Assert.Equal(ops.Count - 1, ProgramGraph.Ancestors(ops, w).Count);
        // Host pass: the fp32 master read and the bf16 copy written; the device and NVMe traffic of the engine's write-back.
        // Parameters in RAM are double-buffered: the update wrote the spare copy, the write-back swaps them and moves nothing.
        long n = Gpt2Xl.TotalParameters;
        bool swaps = parameters == OffloadTier.Cpu;
        Assert.Equal(swaps ? 0 : n * (4 + 2), w.Bytes.Value);
        Assert.Equal(parameters == OffloadTier.None ? n * 2 : 0, w.WriteBackTraffic.Upload.Value);
        Assert.Equal(parameters == OffloadTier.Nvme ? n * 2 : 0, w.WriteBackTraffic.NvmeWrite.Value);
        Assert.Equal(optimizer == OffloadTier.Nvme && !swaps ? n * 12 : 0, w.WriteBackTraffic.NvmeRead.Value);
        // The update no longer writes the working copies itself.
        Assert.DoesNotContain(ops, o => o.Kind == OpKind.ParamWriteBack);
    }

    [Fact]
    public void Given_other_schedules_When_built_Then_they_hold_no_write_back_of_theta()
    {
        foreach (var schedule in new[] { StepSchedule.DeepSpeed, StepSchedule.Overlapped })
            Assert.DoesNotContain(StepScheduler.Build(Gpt2Xl, H200, Offloaded(schedule), false, ProgramShape.Engine).Ops, o => o.Kind == OpKind.MasterWriteBack);
    }

    [Fact]
    public void Given_parameters_on_the_device_When_a_delayed_step_is_priced_Then_it_grows_by_the_write_back_of_theta()
    {
        HardwareProfile hw = ProfileCatalog.Default.Load("h200-1x-calibrated");
        TrainingSettings s = Offloaded(StepSchedule.Delayed) with { ParamOffload = OffloadTier.None, MicroBatch = 1 };
        double withCost = Simulator.Predict(Gpt2Xl, hw, s).Time.Seconds, free = Simulator.Predict(Gpt2Xl, WithFreeWriteBack(hw), s).Time.Seconds;
        // 1.56 G parameters × 6 bytes at the host's measured memory-copy rate, serial after the step.
        double writeBack = Gpt2Xl.TotalParameters * 6.0 / (hw.Cpu.MemoryBandwidthGbps.Value * 1e9);

        Assert.Equal(writeBack, withCost - free, writeBack * 0.02);
    }

    [Fact]
    public void Given_parameters_in_ram_When_a_delayed_step_is_priced_Then_its_write_back_is_a_free_swap()
    {
        HardwareProfile hw = ProfileCatalog.Default.Load("h200-1x-calibrated");
        double delayed = Step(hw, StepSchedule.Delayed), free = Step(WithFreeWriteBack(hw), StepSchedule.Delayed);

        // The serial write-back (6 bytes per parameter at the host's copy rate, ~0.3 s here) is gone; the step is the longer of passes and update.
        Assert.Equal(free, delayed, 1e-9);
        Assert.True(delayed < Step(hw, StepSchedule.DeepSpeed), $"delayed {delayed:F3} s, deepspeed {Step(hw, StepSchedule.DeepSpeed):F3} s");
    }
}

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
        // 1.56 B parameters at 2 G/s: about 0.8 s of CPU Adam, longer than forward and backward.
        HardwareProfile slow = WithAdam(2e9);
        double deepspeed = Step(slow, StepSchedule.DeepSpeed), overlapped = Step(slow, StepSchedule.Overlapped), delayed = Step(slow, StepSchedule.Delayed);

        Assert.True(delayed < overlapped, $"delayed {delayed:F3} s, overlapped {overlapped:F3} s");
        Assert.True(overlapped < deepspeed, $"overlapped {overlapped:F3} s, deepspeed {deepspeed:F3} s");
        // The steady state is the longer of the passes and the update, not their sum.
        double adam = Gpt2Xl.TotalParameters / 2e9;
        Assert.True(delayed < deepspeed - 0.5 * Math.Min(adam, deepspeed - adam), $"delayed {delayed:F3} s hides little of deepspeed's {deepspeed:F3} s");
    }

    [Fact]
    public void Given_a_negligible_cpu_optimizer_When_priced_Then_the_three_schedules_take_the_same_time()
    {
        HardwareProfile fast = WithAdam(HardwareBounds.MaxAdamParamsPerS);
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
}

using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Core.Tests;

public class StepSchedulerTests
{
    private static readonly ModelSpec Gpt2 = ModelCatalog.Default.Load("gpt2");
    private static readonly HardwareProfile Dgx = ProfileCatalog.Default.Load("dgx-a100");

    [Theory]
    [InlineData(StepSchedule.DeepSpeed)]
    [InlineData(StepSchedule.Overlapped)]
    public void Given_zero2_on_several_gpus_When_scheduled_Then_the_updated_model_is_all_gathered_once(StepSchedule schedule)
    {
        var s = new TrainingSettings { ZeroStage = ZeroStage.Zero2, OptimizerOffload = OffloadTier.Cpu, GpusPerNode = 8, Schedule = schedule };
        var gathers = StepScheduler.Build(Gpt2, Dgx, s).Ops.Where(o => o.Kind == OpKind.AllGather && o.Phase == StepPhase.Optimizer).ToList();
        var gather = Assert.Single(gathers);
        Assert.Equal(Gpt2.TotalParameters * 2, gather.Bytes.Value);
    }

    [Fact]
    public void Given_accumulation_When_scheduled_Then_no_backward_starts_before_the_gradients_two_backwards_earlier_have_left()
    {
        var s = new TrainingSettings { ZeroStage = ZeroStage.Zero3, OptimizerOffload = OffloadTier.Cpu, GradAccumulation = 3 };
        var ops = StepScheduler.Build(Gpt2, Dgx with { GpusPerNode = 1 }, s).Ops;
        var backwards = ops.Where(o => o.Kind == OpKind.Backward).ToList();
        var downloads = ops.Where(o => o.Kind == OpKind.GradDownload).ToList();
        Assert.Equal(backwards.Count, downloads.Count);
        for (int i = 2; i < backwards.Count; i++)
            Assert.Contains(downloads[i - 2].Id, backwards[i].Deps);
    }
}

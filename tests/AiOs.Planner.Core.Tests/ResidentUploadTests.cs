using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The engine with the optimizer offloaded and the parameters on the device: each sub-group's CPU update ends by copying its
/// updated training-precision copy to the device (pinned staging, a synchronous copy), inside the update's own operation.
/// </summary>
public class ResidentUploadTests
{
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x-calibrated");
    private static readonly ModelSpec Tiny = ModelCatalog.Default.Load("tiny-gpt") with { NumLayers = 3 };

    private static TrainingSettings OptimizerOnly(StepSchedule schedule = StepSchedule.DeepSpeed, OffloadTier parameters = OffloadTier.None) => new()
    {
        ZeroStage = ZeroStage.Infinity, ParamOffload = parameters, OptimizerOffload = OffloadTier.Cpu, Precision = Precision.Bf16,
        MicroBatch = 1, SeqLen = 16, SubGroupSize = 1000, Schedule = schedule,
    };

    [Fact]
    public void Given_resident_parameters_and_a_cpu_optimizer_When_built_Then_every_update_carries_its_sub_groups_upload_and_is_priced_with_it()
    {
        var s = OptimizerOnly();
        var program = StepScheduler.Build(Tiny, H200, s, false, ProgramShape.Engine);
        var steps = program.Ops.Where(o => o.Kind == OpKind.OptimizerStep).ToList();
        var costs = Simulator.Costs(program, H200, s);

        Assert.NotEmpty(steps);
        Assert.All(steps, o => Assert.Equal(Bytes.OfElements(o.Parameters, 2), o.ResidentUpload));
        var adamOnly = SimDuration.FromSeconds(steps[0].Parameters / H200.Cpu.AdamParamsPerS.Value);
        var upload = Bytes.OfElements(steps[0].Parameters, 2) / H200.HostLink!.H2d(pinned: true);
        Assert.Equal(adamOnly + upload, costs.Duration(steps[0], Tiny.HiddenSize));
        Assert.True(upload > SimDuration.Zero);
    }

    [Theory]
    [InlineData(StepSchedule.Delayed, OffloadTier.None)]  // the write-back operation uploads instead
    [InlineData(StepSchedule.DeepSpeed, OffloadTier.Cpu)] // the next pass's uploads carry them
    public void Given_a_delayed_update_or_streamed_parameters_When_built_Then_no_update_carries_an_upload(StepSchedule schedule, OffloadTier parameters)
    {
        var program = StepScheduler.Build(Tiny, H200, OptimizerOnly(schedule, parameters), false, ProgramShape.Engine);

        Assert.Contains(program.Ops, o => o.Kind == OpKind.OptimizerStep);
        Assert.All(program.Ops, o => Assert.Equal(Bytes.Zero, o.ResidentUpload));
    }
}

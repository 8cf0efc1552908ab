using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// Plain data parallelism (no ZeRO stage) all-reduces each unit's step gradient once, at the accumulation boundary after
/// the whole backward, as DeepSpeed's engine (<c>is_gradient_accumulation_boundary</c>) and the aios resident trainer do:
/// the bytes a step moves do not grow with the micro-batches accumulated.
/// </summary>
public class DataParallelAllReduceTests
{
    private static readonly ModelSpec Gpt2 = ModelCatalog.Default.Load("gpt2");
    private static readonly HardwareProfile Node = ProfileCatalog.Default.Load("h100-node");

    private static StepProgram Program(int accumulation) =>
        StepScheduler.Build(Gpt2, Node, new TrainingSettings { MicroBatch = 4, SeqLen = 1024, Precision = Precision.Bf16, ZeroStage = ZeroStage.None, GradAccumulation = accumulation });

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public void Given_no_zero_stage_When_micro_batches_accumulate_Then_each_unit_is_all_reduced_once_after_the_last_backward(int accumulation)
    {
        var program = Program(accumulation);
        var reduces = program.Ops.Where(o => o.Kind == OpKind.ReduceScatter).ToList();
        int lastBackward = program.Ops.Last(o => o.Kind == OpKind.Backward).Id;

        Assert.Equal(Gpt2.NumLayers + 2, reduces.Count);
        Assert.All(reduces, o => Assert.True(o.Id > lastBackward && o.MicroBatch == accumulation - 1, $"all-reduce of {o.Unit} at {o.Id}, micro-batch {o.MicroBatch}"));
        Assert.Equal(Program(1).Ops.Where(o => o.Kind == OpKind.ReduceScatter).Sum(o => o.Bytes.Value), reduces.Sum(o => o.Bytes.Value));
        Assert.All(program.Ops.Where(o => o.Kind == OpKind.OptimizerStep), o => Assert.True(reduces.All(r => r.Id < o.Id)));
    }
}

using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Core.Tests;

/// <summary>The head's forward in the step program holds what its executor keeps at the loss: the engine's fused head, or PyTorch's full logits.</summary>
public class ProgramHeadMemoryTests
{
    private static readonly ModelSpec Gpt2 = ModelCatalog.Default.Load("gpt2");
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x");

    [Theory]
    [InlineData(ExecutorKind.Aios, OffloadTier.None)]
    [InlineData(ExecutorKind.Aios, OffloadTier.Cpu)]
    [InlineData(ExecutorKind.DeepSpeed, OffloadTier.Cpu)]
    public void Given_an_executor_When_its_program_is_built_Then_the_head_forward_holds_that_executors_bytes_at_the_loss(ExecutorKind executor, OffloadTier offload)
    {
        var s = new TrainingSettings
        {
            MicroBatch = 8, SeqLen = 1024, Precision = Precision.Bf16, Executor = executor, ActivationCheckpointing = true,
            ParamOffload = offload, OptimizerOffload = offload, ZeroStage = offload == OffloadTier.None ? ZeroStage.None : ZeroStage.Infinity,
            HeadLoss = HeadLoss.Fused, // the fused head's bytes, with its kernel on a GPU
        };
        var program = StepScheduler.Build(Gpt2, H200, s, false, ProgramShape.For(s, H200));
        var head = program.Ops.First(o => o.Kind == OpKind.Forward && o.Unit.Kind == UnitKind.Head);
        long held = head.Effects.Where(e => e.Bytes > 0).Sum(e => e.Bytes);

        long expected = executor == ExecutorKind.Aios
            ? EngineHeadLoss.PeakBytes(Gpt2, s, 8 * 1024, fused: true, gpu: true).Value
            : (long)Math.Ceiling(ActivationModel.HeadBytesPerToken(Gpt2, s) * 8 * 1024);
        Assert.Equal(expected, held);
        if (executor == ExecutorKind.Aios) // the fused head keeps far less than full logits at this size
            Assert.True(held < ActivationModel.HeadBytesPerToken(Gpt2, s) * 8 * 1024 / 2);
    }
}

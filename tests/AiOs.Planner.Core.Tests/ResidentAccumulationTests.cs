using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The resident engine's fp32 gradient sums under accumulation (Engine <c>DeviceTrainer</c>): every micro-batch zeroes the
/// 16-bit gradients (the first also the sums) before its embedding forward and adds them into the sums after its embedding
/// backward. The step program carries those passes' bytes on the embedding's operations; fp32 training and DeepSpeed's
/// program have none.
/// </summary>
public class ResidentAccumulationTests
{
    private static readonly ModelSpec Gpt2 = ModelCatalog.Default.Load("gpt2");
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x-calibrated");
    private static readonly TrainingSettings Resident = new() { MicroBatch = 4, SeqLen = 1024, Precision = Precision.Bf16 };

    private static (double Forward, double Backward)[] Embedding(TrainingSettings s)
    {
        var program = StepScheduler.Build(Gpt2, H200, s, false, ProgramShape.For(s, H200));
        return Enumerable.Range(0, s.GradAccumulation).Select(mb =>
        (
            program.Ops.Single(o => o.Kind == OpKind.Forward && o.Unit.Kind == UnitKind.Embedding && o.MicroBatch == mb).ElementwiseBytes,
            program.Ops.Single(o => o.Kind == OpKind.Backward && o.Unit.Kind == UnitKind.Embedding && o.MicroBatch == mb).ElementwiseBytes
        )).ToArray();
    }

    [Fact]
    public void Given_bf16_accumulation_of_4_When_the_resident_program_is_built_Then_each_micro_batch_zeroes_and_adds_the_whole_model()
    {
        var one = Embedding(Resident)[0];
        var four = Embedding(Resident with { GradAccumulation = 4 });
        double p = Gpt2.TotalParameters;

        Assert.Equal(one.Forward + p * (2 + 4), four[0].Forward, 6); // the bf16 gradients and the fp32 sums zeroed
        for (int mb = 1; mb < 4; mb++) Assert.Equal(one.Forward + p * 2, four[mb].Forward, 6);
        Assert.All(four, e => Assert.Equal(one.Backward + p * (2 + 8), e.Backward, 6)); // read both, write the sum
    }

    [Theory]
    [InlineData(Precision.Fp32, ExecutorKind.Aios)]
    [InlineData(Precision.Bf16, ExecutorKind.DeepSpeed)]
    public void Given_no_fp32_sums_When_the_program_is_built_Then_accumulation_adds_no_passes(Precision precision, ExecutorKind executor)
    {
        var s = Resident with { Precision = precision, Executor = executor };
        var one = Embedding(s)[0];

        Assert.All(Embedding(s with { GradAccumulation = 4 }), e => Assert.Equal(one, e));
    }
}

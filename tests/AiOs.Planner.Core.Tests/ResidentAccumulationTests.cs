using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The resident engine's fp32 gradient sums under accumulation (Engine <c>DeviceTrainer</c>): the step's first micro-batch
/// zeroes the sums before its embedding forward, and each unit's gradients are added into its sums as its backward ends
/// (<c>Land</c>: a layer's with its own backward, the outer block's with the embedding's). The step program carries those
/// passes' bytes as <see cref="Operation.SumBytes"/> on the operations that run them, apart from the fitted layer work;
/// fp32 training and DeepSpeed's program have none.
/// </summary>
public class ResidentAccumulationTests
{
    private static readonly ModelSpec Gpt2 = ModelCatalog.Default.Load("gpt2");
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x-calibrated");
    private static readonly TrainingSettings Resident = new() { MicroBatch = 4, SeqLen = 1024, Precision = Precision.Bf16 };

    private static StepProgram Build(TrainingSettings s) => StepScheduler.Build(Gpt2, H200, s, false, ProgramShape.For(s, H200));

    /// <summary>The element-wise bytes of the step's forward and backward passes (the optimizer's left out).</summary>
    private static double PassBytes(StepProgram program) =>
        program.Ops.Where(o => o.Resource == ResourceKind.Compute && o.Kind != OpKind.OptimizerStep).Sum(o => o.ElementwiseBytes);

    [Fact]
    public void Given_bf16_accumulation_of_4_When_the_resident_program_is_built_Then_the_first_micro_batch_zeroes_the_sums_and_every_unit_adds_its_own_gradients()
    {
        var one = Build(Resident);
        var four = Build(Resident with { GradAccumulation = 4 });
        double p = Gpt2.TotalParameters;
        Operation Embedding(OpKind kind, int mb) => four.Ops.Single(o => o.Kind == kind && o.Unit.Kind == UnitKind.Embedding && o.MicroBatch == mb);

        // The layers' own work is what it is without accumulation.
        Assert.Equal(PassBytes(one) * 4, PassBytes(four), 3);
        Assert.All(one.Ops, o => Assert.Equal(0, o.SumBytes));
        Assert.Equal(p * 4, Embedding(OpKind.Forward, 0).SumBytes, 6); // the fp32 sums zeroed once a step
        for (int mb = 1; mb < 4; mb++) Assert.Equal(0, Embedding(OpKind.Forward, mb).SumBytes);
        for (int mb = 0; mb < 4; mb++)
        {
            var backward = four.Ops.Where(o => o.Kind == OpKind.Backward && o.MicroBatch == mb).ToList();
            // Read the bf16 gradients and the sums, write the sums: 10 bytes a parameter, each layer its own.
            Assert.Equal(p * (2 + 8), backward.Sum(o => o.SumBytes), 6);
            foreach (var layer in backward.Where(o => o.Unit.Kind == UnitKind.Layer))
                Assert.Equal(StepScheduler.UnitParameters(Gpt2, layer.Unit.Number) * 10.0, layer.SumBytes, 6);
            Assert.Equal(0, backward.Single(o => o.Unit.Kind == UnitKind.Head).SumBytes);
        }
    }

    [Fact]
    public void Given_the_sums_When_priced_Then_each_is_one_streaming_pass_at_the_engine_s_measured_rate_beside_the_unit_s_work()
    {
        // A micro-batch large enough that the layer's work, not its launch floor, sets its time.
        var s = Resident with { GradAccumulation = 4, MicroBatch = 16 };
        var program = Build(s);
        var costs = Simulator.Costs(program, H200, s);
        var rate = H200.Gpu!.EngineKernels!.OptimizerGbps!.Value;
        var layer = program.Ops.First(o => o.Kind == OpKind.Backward && o.Unit.Kind == UnitKind.Layer && o.MicroBatch == 1);
        // Two copies outside the program (ids it does not hold): the layer with its sums and without.
        Operation Copy(int id, double sums) => new()
        {
            Id = id, Kind = layer.Kind, Resource = layer.Resource, Phase = layer.Phase, Unit = layer.Unit, MicroBatch = layer.MicroBatch,
            Flops = layer.Flops, ElementwiseBytes = layer.ElementwiseBytes, Deps = layer.Deps, SumBytes = sums,
        };

        Assert.True(layer.SumBytes > 0);
        Assert.Equal(layer.SumBytes / (rate * 1e9),
            (costs.Duration(Copy(-1, layer.SumBytes), Gpt2.HiddenSize) - costs.Duration(Copy(-2, 0), Gpt2.HiddenSize)).Seconds, 8); // durations are whole nanoseconds
    }

    [Theory]
    [InlineData(Precision.Fp32, ExecutorKind.Aios)]
    [InlineData(Precision.Bf16, ExecutorKind.DeepSpeed)]
    public void Given_no_fp32_sums_When_the_program_is_built_Then_accumulation_adds_no_passes(Precision precision, ExecutorKind executor)
    {
        var s = Resident with { Precision = precision, Executor = executor };
        var four = Build(s with { GradAccumulation = 4 });

        Assert.All(four.Ops, o => Assert.Equal(0, o.SumBytes));
        Assert.Equal(PassBytes(Build(s)) * 4, PassBytes(four), 3);
    }
}

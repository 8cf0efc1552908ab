using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The resident engine's gradient landing (Engine <c>DeviceTrainer.Land</c>): as each unit's backward ends its gradients
/// are packed into one flat buffer (a layer's with its own backward, the outer block's with the embedding's), and under
/// accumulation added: in bf16 or fp16 into fp32 sums, zeroed at the step's first micro-batch; in fp32 into the buffer
/// at the later micro-batches. The step program carries those passes' bytes as <see cref="Operation.SumBytes"/> on the
/// operations that run them, apart from the fitted layer work; DeepSpeed's program has none.
/// </summary>
public class ResidentAccumulationTests
{
    private static readonly ModelSpec Gpt2 = ModelCatalog.Default.Load("gpt2");
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x-calibrated");
    private static readonly TrainingSettings Resident = new() { MicroBatch = 4, SeqLen = 1024, Precision = Precision.Bf16 };

    private static StepProgram Build(TrainingSettings s, ModelSpec? model = null) =>
        StepScheduler.Build(model ?? Gpt2, H200, s, false, ProgramShape.For(s, H200));

    /// <summary>The element-wise bytes of the step's forward and backward passes (the optimizer's left out).</summary>
    private static double PassBytes(StepProgram program) =>
        program.Ops.Where(o => o.Resource == ResourceKind.Compute && o.Kind != OpKind.OptimizerStep).Sum(o => o.ElementwiseBytes);

    /// <summary>Asserts each unit's backward at micro-batch <paramref name="mb"/> lands <paramref name="perParameter"/> bytes a parameter of its own, the outer block's with the embedding's.</summary>
    private static void AssertLanding(StepProgram program, ModelSpec model, int mb, double perParameter)
    {
        var backward = program.Ops.Where(o => o.Kind == OpKind.Backward && o.MicroBatch == mb).ToList();
        Assert.Equal(model.TotalParameters * perParameter, backward.Sum(o => o.SumBytes), 6);
        foreach (var layer in backward.Where(o => o.Unit.Kind == UnitKind.Layer))
            Assert.Equal(StepScheduler.UnitParameters(model, layer.Unit.Number) * perParameter, layer.SumBytes, 6);
        Assert.Equal(0, backward.Single(o => o.Unit.Kind == UnitKind.Head).SumBytes);
    }

    [Fact]
    public void Given_bf16_accumulation_of_4_When_the_resident_program_is_built_Then_the_first_micro_batch_zeroes_the_sums_and_every_unit_packs_and_adds_its_own_gradients()
    {
        var one = Build(Resident);
        var four = Build(Resident with { GradAccumulation = 4 });
        double p = Gpt2.TotalParameters;
        Operation Embedding(OpKind kind, int mb) => four.Ops.Single(o => o.Kind == kind && o.Unit.Kind == UnitKind.Embedding && o.MicroBatch == mb);

        // The layers' own work is what it is without accumulation.
        Assert.Equal(PassBytes(one) * 4, PassBytes(four), 3);
        AssertLanding(one, Gpt2, 0, 2 + 2); // the pack alone: read and write the bf16 gradients
        Assert.Equal(p * 4, Embedding(OpKind.Forward, 0).SumBytes, 6); // the fp32 sums zeroed once a step
        for (int mb = 1; mb < 4; mb++) Assert.Equal(0, Embedding(OpKind.Forward, mb).SumBytes);
        // The pack, then the add: read the bf16 gradients and the sums, write the sums.
        for (int mb = 0; mb < 4; mb++) AssertLanding(four, Gpt2, mb, 2 + 2 + (2 + 8));
    }

    [Fact]
    public void Given_fp32_accumulation_When_the_resident_program_is_built_Then_the_later_micro_batches_add_into_the_buffer_and_nothing_is_zeroed()
    {
        var four = Build(Resident with { GradAccumulation = 4, Precision = Precision.Fp32 });

        Assert.All(four.Ops.Where(o => o.Kind == OpKind.Forward), o => Assert.Equal(0, o.SumBytes));
        AssertLanding(four, Gpt2, 0, 4 + 4); // the first replaces the buffer
        for (int mb = 1; mb < 4; mb++) AssertLanding(four, Gpt2, mb, 4 + 4 + 12);
    }

    [Fact]
    public void Given_an_untied_model_When_built_Then_its_outer_block_lands_the_embedding_and_the_head_with_the_embedding()
    {
        var llama = ModelCatalog.Default.Load("tiny-llama");
        Assert.False(llama.TiedEmbeddings);
        var four = Build(Resident with { GradAccumulation = 4 }, llama);

        for (int mb = 0; mb < 4; mb++) AssertLanding(four, llama, mb, 2 + 2 + (2 + 8));
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

    [Fact]
    public void Given_a_work_bound_step_When_simulated_Then_the_landing_lengthens_it_by_its_passes()
    {
        // gpt2-large at micro-batch 16: every unit's work outlasts its launch floor, so the passes land on the step's length
        // (through the per-operation pipelining the engine's steps are priced with).
        var large = ModelCatalog.Default.Load("gpt2-large");
        var s = Resident with { GradAccumulation = 2, MicroBatch = 16 };
        var program = Build(s, large);
        var kernels = H200.Gpu!.EngineKernels!;
        // The same machine with a streaming rate a thousand times as fast: the passes (and the device AdamW) nearly free.
        var fast = H200 with { Gpu = H200.Gpu with { EngineKernels = kernels with { OptimizerGbps = Figure.Measured(kernels.OptimizerGbps!.Value * 1000, "2026-12-07", "test") } } };
        var slow = Simulator.Costs(program, H200, s);
        var quick = Simulator.Costs(program, fast, s);
        double step = StepSimulator.Simulate(program, slow, false).Time.Seconds, quickStep = StepSimulator.Simulate(program, quick, false).Time.Seconds;
        double optimizer = program.Ops.Where(o => o.Kind == OpKind.OptimizerStep).Sum(o => slow.Duration(o, large.HiddenSize).Seconds - quick.Duration(o, large.HiddenSize).Seconds);
        double passes = program.Ops.Sum(o => o.SumBytes) / (kernels.OptimizerGbps!.Value * 1e9) * (1 - 1e-3);

        Assert.True(passes > 0);
        Assert.Equal(passes, step - quickStep - optimizer, passes * 0.02);
    }

    [Theory]
    [InlineData(Precision.Bf16, 1)]
    [InlineData(Precision.Bf16, 4)]
    [InlineData(Precision.Fp32, 4)]
    public void Given_deepspeed_s_program_When_built_Then_it_lands_nothing(Precision precision, int accumulation)
    {
        var s = Resident with { Precision = precision, Executor = ExecutorKind.DeepSpeed };
        var program = Build(s with { GradAccumulation = accumulation });

        Assert.All(program.Ops, o => Assert.Equal(0, o.SumBytes));
        Assert.Equal(PassBytes(Build(s)) * accumulation, PassBytes(program), 3);
    }
}

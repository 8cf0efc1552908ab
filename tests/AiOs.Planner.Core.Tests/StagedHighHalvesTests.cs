using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;
using FsCheck;
using FsCheck.Fluent;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// Split master weights' high halves taken from the staging slot the unit's last parameter read of the step filled
/// (<see cref="ProgramShape.StagedHighHalves"/>, <see cref="Operation.HighHalvesSlot"/>): which reads the program serves so,
/// that the slot still holds the unit when they run, and that the planned NVMe reads drop by 2 bytes per served parameter.
/// </summary>
public class StagedHighHalvesTests
{
    private static readonly ModelSpec Tiny = ModelCatalog.Default.Load("tiny-gpt");
    private static readonly HardwareProfile Cpu = ProfileCatalog.Default.Load("ci-2core-24gb");
    private static readonly ProgramShape FromDrive = ProgramShape.Engine with { StagedHighHalves = false };

    private static TrainingSettings Split(StepSchedule schedule, int buffers = 2, int prefetch = 1, int accumulation = 1, long subGroup = 5000) => new()
    {
        ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Nvme, GradientOffload = OffloadTier.Cpu,
        NvmePath = "/tmp", MaxInCpu = 0, MicroBatch = 1, SeqLen = 16, Precision = Precision.Bf16,
        OptimizerState = OptimizerStateFormat.EightBit, MasterWeights = MasterWeights.Split,
        Schedule = schedule, BufferCount = buffers, PrefetchDepth = prefetch, GradAccumulation = accumulation, SubGroupSize = subGroup,
    };

    private static List<Operation> Staged(StepProgram program) =>
        program.Ops.Where(o => o.Kind == OpKind.OptimizerRead && o.HighHalvesSlot >= 0).ToList();

    private static long NvmeRead(StepProgram program) =>
        program.Ops.Where(o => o.Resource == ResourceKind.Nvme && !o.IsWrite).Sum(o => o.Bytes.Value);

    [Fact]
    public void Given_the_overlapped_schedule_with_as_many_staging_slots_as_layer_slots_When_built_Then_every_units_update_takes_its_high_halves_from_staging()
    {
        ModelSpec spec = Tiny with { NumLayers = 4 };
        var program = StepScheduler.Build(spec, Cpu, Split(StepSchedule.Overlapped), false, ProgramShape.Engine);

        var reads = program.Ops.Where(o => o.Kind == OpKind.OptimizerRead).ToList();
        Assert.NotEmpty(reads);
        Assert.All(reads, o => Assert.True(o.HighHalvesSlot >= 0, $"{o} reads its high halves from the drive"));
        Assert.Equal(NvmeRead(StepScheduler.Build(spec, Cpu, Split(StepSchedule.Overlapped), false, FromDrive)) - 2 * spec.TotalParameters, NvmeRead(program));
    }

    [Fact]
    public void Given_the_deepspeed_schedule_with_two_staging_slots_When_built_Then_the_two_layers_read_last_and_the_outer_block_are_served_and_the_rest_read_from_the_drive()
    {
        ModelSpec spec = Tiny with { NumLayers = 4 };
        var program = StepScheduler.Build(spec, Cpu, Split(StepSchedule.DeepSpeed), false, ProgramShape.Engine);

        Assert.Equal([UnitId.Layer(0), UnitId.Layer(1), UnitId.Outer], Staged(program).Select(o => o.Unit).Distinct());
        long served = 2 * spec.LayerParameters + spec.TotalParameters - spec.NumLayers * spec.LayerParameters;
        Assert.Equal(served, Staged(program).Sum(o => o.SubGroup!.Value.Elements));
        Assert.Equal(NvmeRead(StepScheduler.Build(spec, Cpu, Split(StepSchedule.DeepSpeed), false, FromDrive)) - 2 * served, NvmeRead(program));
    }

    [Theory]
    [InlineData(MasterWeights.Fp32, OffloadTier.Nvme)]
    [InlineData(MasterWeights.Split, OffloadTier.Cpu)]
    public void Given_no_high_halves_on_nvme_When_built_Then_no_read_is_staged(MasterWeights master, OffloadTier parameters)
    {
        var s = Split(StepSchedule.Overlapped) with { MasterWeights = master, ParamOffload = parameters };
        Assert.Empty(Staged(StepScheduler.Build(Tiny, Cpu, s, false, ProgramShape.Engine)));
    }

    private static Gen<(ModelSpec Spec, TrainingSettings Settings)> Cases() =>
        from layers in Gen.Choose(1, 5)
        from schedule in Gen.Elements(StepSchedule.DeepSpeed, StepSchedule.Overlapped)
        from buffers in Gen.Choose(1, 4)
        from prefetch in Gen.Choose(0, 3)
        from accumulation in Gen.Choose(1, 3)
        from subGroup in Gen.Elements(3_000L, 20_000L, 1_000_000L)
        from pipelineRead in Gen.Elements(true, false)
        select (Tiny with { NumLayers = layers },
            Split(schedule, buffers, prefetch, accumulation, subGroup) with { PipelineRead = pipelineRead });

    [Fact]
    public void Given_random_schedules_and_staging_When_built_Then_each_staged_read_finds_its_units_last_read_in_its_slot_and_the_next_read_into_the_slot_waits_for_it()
    {
        Prop.ForAll(Cases().ToArbitrary(), c =>
        {
            var program = StepScheduler.Build(c.Spec, Cpu, c.Settings, false, ProgramShape.Engine);
            var ops = program.Ops;
            foreach (Operation read in Staged(program))
            {
                // The unit's last parameter read before this one filled the slot, nothing reused the slot in between, and the read waits for it.
                Operation filled = ops.Take(read.Id).Last(o => o.Kind == OpKind.ParamRead && o.Unit == read.Unit);
                Assert.Equal(read.HighHalvesSlot, filled.Slot);
                Assert.DoesNotContain(ops.Skip(filled.Id + 1).Take(read.Id - filled.Id - 1), o => o.Kind == OpKind.ParamRead && o.Slot == filled.Slot);
                Assert.Contains(filled.Id, read.Deps);
                // No later read of the unit in the step: its update comes after its last use.
                Assert.DoesNotContain(ops.Skip(read.Id + 1), o => o.Kind == OpKind.ParamRead && o.Unit == read.Unit);
                Operation? next = ops.Skip(read.Id + 1).FirstOrDefault(o => o.Kind == OpKind.ParamRead && o.Slot == filled.Slot);
                if (next is not null) Assert.Contains(read.Id, next.Deps);
            }
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(60));
    }

    [Fact]
    public void Given_random_schedules_and_staging_When_simulated_Then_staged_high_halves_cut_the_nvme_reads_by_2_bytes_per_served_parameter_and_are_never_slower()
    {
        Prop.ForAll(Cases().ToArbitrary(), c =>
        {
            var staged = StepScheduler.Build(c.Spec, Cpu, c.Settings, false, ProgramShape.Engine);
            var drive = StepScheduler.Build(c.Spec, Cpu, c.Settings, false, FromDrive);
            long served = Staged(staged).Sum(o => o.SubGroup!.Value.Elements);
            Assert.Equal(NvmeRead(drive) - 2 * served, NvmeRead(staged));
            // The overlapped schedule's updates follow each backward: the outer block's at least is served whatever the staging.
            if (c.Settings.Schedule == StepSchedule.Overlapped) Assert.True(served > 0);
            var costs = Simulator.Costs(staged, Cpu, c.Settings);
            Assert.True(StepSimulator.Simulate(staged, costs).Time <= StepSimulator.Simulate(drive, costs).Time);
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(40));
    }
}

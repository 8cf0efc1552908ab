using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Core.Tests;

/// <summary>The two program shapes: where DeepSpeed's program and the engine's differ, and that each is a program the simulator can run.</summary>
public class ProgramShapeTests
{
    private static readonly ModelSpec Tiny = ModelCatalog.Default.Load("tiny-gpt") with { NumLayers = 3 };
    private static readonly HardwareProfile Cpu = ProfileCatalog.Default.Load("ci-2core-24gb");
    private static readonly HardwareProfile Gpu = ProfileCatalog.Default.Load("h200-1x");

    private static TrainingSettings Offloaded(OffloadTier tier, int accumulation = 1, StepSchedule schedule = StepSchedule.DeepSpeed) => new()
    {
        ZeroStage = ZeroStage.Infinity, ParamOffload = tier, OptimizerOffload = tier, NvmePath = tier == OffloadTier.Nvme ? "/tmp" : null,
        MicroBatch = 1, SeqLen = 16, GradAccumulation = accumulation, Schedule = schedule, SubGroupSize = 1000, BufferCount = 2,
        // Every unit on NVMe: these tests are about the swap path (max_in_cpu's default would keep tiny-gpt in RAM).
        BufferSize = 1_000_000, PrefetchDepth = 1, MaxInCpu = 0,
    };

    [Fact]
    public void Given_the_engine_shape_When_parameters_are_on_nvme_Then_the_outer_block_is_read_once_per_micro_batch()
    {
        var engine = StepScheduler.Build(Tiny, Cpu, Offloaded(OffloadTier.Nvme, accumulation: 2), false, ProgramShape.Engine);
        var deepSpeed = StepScheduler.Build(Tiny, Cpu, Offloaded(OffloadTier.Nvme, accumulation: 2));

        Assert.Equal(2, engine.Ops.Count(o => o.Kind == OpKind.ParamRead && o.Unit == UnitId.Outer));
        Assert.DoesNotContain(engine.Ops, o => o.Kind == OpKind.ParamRead && o.Unit.Kind is UnitKind.Embedding or UnitKind.Head);
        // DeepSpeed fetches the embedding and the head separately, each for forward and for backward, per micro-batch.
        Assert.Equal(4 * 2, deepSpeed.Ops.Count(o => o.Kind == OpKind.ParamRead && o.Unit.Kind is UnitKind.Embedding or UnitKind.Head));
        Assert.DoesNotContain(deepSpeed.Ops, o => o.Unit == UnitId.Outer);
    }

    [Fact]
    public void Given_the_engine_shape_When_the_optimizer_runs_Then_no_sub_group_spans_two_units_and_every_parameter_is_updated_once()
    {
        var program = StepScheduler.Build(Tiny, Cpu, Offloaded(OffloadTier.Cpu), false, ProgramShape.Engine);
        var steps = program.Ops.Where(o => o.Kind == OpKind.OptimizerStep).ToList();

        Assert.All(steps, o => Assert.True(o.SubGroup is { Unit.Kind: UnitKind.Layer or UnitKind.Outer }, $"{o} has no unit's sub-group"));
        Assert.All(steps.Where(o => o.SubGroup!.Value.Unit.Kind == UnitKind.Layer),
            o => Assert.True(o.SubGroup!.Value.Offset + o.SubGroup.Value.Elements <= Tiny.LayerParameters, $"{o} runs past its layer"));
        Assert.Equal(Tiny.TotalParameters, steps.Sum(o => o.Parameters));
        // DeepSpeed's sub-groups run across the flat model.
        var flat = StepScheduler.Build(Tiny, Cpu, Offloaded(OffloadTier.Cpu)).Ops.Where(o => o.Kind == OpKind.OptimizerStep).ToList();
        Assert.All(flat, o => Assert.Equal(UnitKind.Model, o.SubGroup!.Value.Unit.Kind));
        Assert.Contains(flat, o => o.SubGroup!.Value.Offset < Tiny.EmbeddingParameters && o.SubGroup.Value.Offset + o.SubGroup.Value.Elements > Tiny.EmbeddingParameters);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Given_nvme_gradients_and_accumulation_When_scheduled_Then_the_engine_reads_adds_and_writes_every_micro_batch_and_deepspeed_writes_once(int accumulation)
    {
        var s = Offloaded(OffloadTier.Nvme, accumulation);
        var engine = StepScheduler.Build(Tiny, Cpu, s, false, ProgramShape.Engine).Ops;
        var deepSpeed = StepScheduler.Build(Tiny, Cpu, s).Ops;
        int engineUnits = Tiny.NumLayers + 1, deepSpeedUnits = Tiny.NumLayers + 2;

        Assert.Equal(engineUnits * accumulation, engine.Count(o => o.Kind == OpKind.GradWrite));
        Assert.Equal(engineUnits * (accumulation - 1), engine.Count(o => o.Kind == OpKind.GradRead));
        Assert.Equal(deepSpeedUnits, deepSpeed.Count(o => o.Kind == OpKind.GradWrite));
        Assert.DoesNotContain(deepSpeed, o => o.Kind == OpKind.GradRead);
    }

    [Fact]
    public void Given_buffers_of_whole_units_When_parameters_stream_from_nvme_Then_reads_cycle_through_buffer_count_staging_slots()
    {
        var s = Offloaded(OffloadTier.Nvme) with { BufferCount = 2, PrefetchDepth = 2 };
        var program = StepScheduler.Build(Tiny, Cpu, s, false, ProgramShape.Engine);
        var layerReads = program.Ops.Where(o => o.Kind == OpKind.ParamRead && o.Unit.Kind == UnitKind.Layer).ToList();

        Assert.Equal([0, 1], layerReads.Select(o => o.Slot).Distinct().Order());
        // A read into a staging slot waits for the upload that last emptied it.
        var uploads = program.Ops.Where(o => o.Kind == OpKind.ParamUpload && o.Unit.Kind == UnitKind.Layer).ToList();
        for (int i = 2; i < layerReads.Count; i++)
            Assert.Contains(uploads[i - 2].Id, layerReads[i].Deps);
    }

    public static TheoryData<OffloadTier, StepSchedule, int, bool> Placements()
    {
        var data = new TheoryData<OffloadTier, StepSchedule, int, bool>();
        foreach (var tier in new[] { OffloadTier.Cpu, OffloadTier.Nvme })
        foreach (var schedule in new[] { StepSchedule.DeepSpeed, StepSchedule.Overlapped })
        foreach (int accumulation in new[] { 1, 3 })
        foreach (bool gpu in new[] { false, true })
            data.Add(tier, schedule, accumulation, gpu);
        return data;
    }

    [Theory]
    [MemberData(nameof(Placements))]
    public void Given_the_engine_shape_When_simulated_Then_every_dependency_comes_earlier_and_the_step_completes(OffloadTier tier, StepSchedule schedule, int accumulation, bool gpu)
    {
        var hw = gpu ? Gpu : Cpu;
        var s = Offloaded(tier, accumulation, schedule);
        var program = StepScheduler.Build(Tiny, hw, s, false, ProgramShape.Engine);

        Assert.All(program.Ops, o => Assert.All(o.Deps, d => Assert.True(d >= 0 && d < o.Id, $"{o} depends on #{d}")));
        var step = StepSimulator.Simulate(program, Simulator.Costs(program, hw, s));
        Assert.True(step.Time.Nanoseconds > 0);
        Assert.Equal(program.Ops.Count, step.Operations);
    }

    [Fact]
    public void Given_resident_parameters_and_accumulation_When_the_engine_shape_is_scheduled_Then_a_units_backward_waits_for_its_previous_gradient_download()
    {
        var s = Offloaded(OffloadTier.Cpu, accumulation: 2) with { ParamOffload = OffloadTier.None };
        var ops = StepScheduler.Build(Tiny, Cpu, s, false, ProgramShape.Engine).Ops;

        // The engine accumulates into the parameters' own gradients: draining micro-batch 0's must end before micro-batch 1 adds to them.
        foreach (int layer in Enumerable.Range(0, Tiny.NumLayers))
        {
            var download = ops.Single(o => o.Kind == OpKind.GradDownload && o.Unit == UnitId.Layer(layer) && o.MicroBatch == 0);
            var backward = ops.Single(o => o.Kind == OpKind.Backward && o.Unit == UnitId.Layer(layer) && o.MicroBatch == 1);
            Assert.Contains(download.Id, backward.Deps);
        }
        var outerDownload = ops.Single(o => o.Kind == OpKind.GradDownload && o.Unit == UnitId.Outer && o.MicroBatch == 0);
        Assert.Contains(outerDownload.Id, ops.Single(o => o.Kind == OpKind.Backward && o.Unit.Kind == UnitKind.Head && o.MicroBatch == 1).Deps);
    }

    [Fact]
    public void Given_settings_that_name_no_gpus_When_the_topology_is_resolved_Then_the_profile_decides_and_a_cpu_machine_counts_one()
    {
        Assert.Equal(new Topology(8, 1), Topology.Of(new TrainingSettings(), ProfileCatalog.Default.Load("dgx-a100")));
        Assert.Equal(new Topology(2, 3), Topology.Of(new TrainingSettings { GpusPerNode = 2, Nodes = 3 }, ProfileCatalog.Default.Load("dgx-a100")));
        Assert.Equal(1, Topology.Of(new TrainingSettings(), Cpu).Ranks);
    }
}

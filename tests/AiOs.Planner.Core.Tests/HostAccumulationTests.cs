using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The engine's later micro-batches into CPU RAM: its downloading thread copies the gradients in the working precision,
/// waits, and adds them into the fp32 sums on the host (after the last, Σg² too). The program marks those downloads and
/// the costs charge the host work on top of the copy. A step of one micro-batch adds nothing but still reads each unit's
/// store once for its Σg² after the copy (issue 13: the last two units' on the compute thread before the first update).
/// </summary>
public class HostAccumulationTests
{
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x-calibrated");
    private static readonly ModelSpec Tiny = ModelCatalog.Default.Load("tiny-gpt") with { NumLayers = 3 };

    private static TrainingSettings Offloaded(int accumulation, OffloadTier gradients = OffloadTier.Cpu) => new()
    {
        ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.Cpu, OptimizerOffload = gradients, GradientOffload = gradients,
        Precision = Precision.Bf16, GradAccumulation = accumulation, MicroBatch = 1, SeqLen = 16, SubGroupSize = 1000,
        ActivationCheckpointing = true, NvmePath = gradients == OffloadTier.Nvme ? "/nvme" : null,
    };

    private static long ElementsOf(Operation o) => o.Unit == UnitId.Outer ? Memory.EngineMemory.OuterElements(Tiny) : Tiny.LayerParameters;

    [Fact]
    public void Given_the_engine_on_a_gpu_with_gradients_in_cpu_ram_When_built_Then_only_later_micro_batches_add_on_the_host_and_the_last_takes_squares()
    {
        var ops = StepScheduler.Build(Tiny, H200, Offloaded(3), false, ProgramShape.Engine).Ops.Where(o => o.Kind == OpKind.GradDownload).ToList();

        Assert.All(ops.Where(o => o.MicroBatch == 0), o => Assert.Equal(default, o.HostAdd));
        var later = ops.Where(o => o.MicroBatch > 0).ToList();
        Assert.Equal(2 * (Tiny.NumLayers + 1), later.Count);
        Assert.All(later, o => Assert.Equal(new HostAccumulation(ElementsOf(o), 2, SumsSquares: o.MicroBatch == 2), o.HostAdd));
    }

    [Fact]
    public void Given_deepspeeds_shape_or_gradients_on_nvme_When_built_Then_no_download_carries_a_host_add()
    {
        var deepSpeed = StepScheduler.Build(Tiny, H200, Offloaded(3), false, ProgramShape.DeepSpeed).Ops;

        var nvme = StepScheduler.Build(Tiny, H200, Offloaded(3, OffloadTier.Nvme), false, ProgramShape.Engine).Ops;

        Assert.All(deepSpeed, o => Assert.Equal(default, o.HostAdd));
        Assert.Contains(deepSpeed, o => o.Kind == OpKind.GradDownload && o.MicroBatch > 0);
        Assert.All(nvme, o => Assert.Equal(default, o.HostAdd));
        Assert.Contains(nvme, o => o.Kind == OpKind.GradDownload && o.MicroBatch > 0);
    }

    [Fact]
    public void Given_a_later_micro_batch_download_When_priced_Then_it_costs_its_copy_plus_the_host_add_and_the_last_adds_the_squares_pass()
    {
        var s = Offloaded(2);
        var program = StepScheduler.Build(Tiny, H200, s, false, ProgramShape.Engine);
        var costs = Simulator.Costs(program, H200, s);
        var pass = HostPass.Of(H200.Cpu, processes: 1);
        var download = program.Ops.First(o => o.Kind == OpKind.GradDownload && o.MicroBatch == 1 && o.Unit.Kind == UnitKind.Layer);

        var withAdd = costs.Duration(download, Tiny.HiddenSize);
        var copyOnly = costs.Duration(Copy(download, default), Tiny.HiddenSize);

        Assert.Equal(pass.Time(Tiny.LayerParameters, 10, HostSplit.Even) + pass.Time(Tiny.LayerParameters, 4), withAdd - copyOnly);
        Assert.True(copyOnly > SimDuration.Zero);
    }

    [Fact]
    public void Given_gradient_accumulation_in_cpu_ram_When_the_step_is_predicted_Then_it_is_longer_than_the_copies_alone_by_at_least_one_host_add()
    {
        var s = Offloaded(4);
        var program = StepScheduler.Build(Tiny, H200, s, false, ProgramShape.Engine);
        var costs = Simulator.Costs(program, H200, s);
        var stripped = new StepProgram
        {
            Model = program.Model, Settings = program.Settings, Ops = program.Ops.Select(o => Copy(o, default)).ToList(),
            StaticLevels = program.StaticLevels, Shape = program.Shape, Topology = program.Topology, FirstStep = program.FirstStep,
        };

        var full = StepSimulator.Simulate(program, costs).Time;
        var copiesOnly = StepSimulator.Simulate(stripped, costs).Time;

        var oneAdd = HostPass.Of(H200.Cpu, 1).Time(Tiny.LayerParameters, 10, HostSplit.Even);
        Assert.True(full - copiesOnly >= oneAdd, $"{full} vs {copiesOnly}");
    }

    [Theory]
    [InlineData(Precision.Bf16)]
    [InlineData(Precision.Fp32)]
    public void Given_one_micro_batch_into_cpu_ram_When_built_Then_no_download_does_host_work(Precision precision)
    {
        var s = Offloaded(1) with { Precision = precision };
        var ops = StepScheduler.Build(Tiny, H200, s, false, ProgramShape.Engine).Ops.Where(o => o.Kind == OpKind.GradDownload).ToList();

        // The copy lands in the store as it is, and the unit's Σg² lands with it from the device (CpuGradientStore).
        Assert.Equal(Tiny.NumLayers + 1, ops.Count);
        Assert.All(ops, o => Assert.Equal(default, o.HostAdd));
    }

    [Fact]
    public void Given_one_micro_batch_on_several_ranks_When_built_Then_every_download_takes_its_units_squares_over_the_store()
    {
        // Several ranks download without copy streams (their reduce-scatter takes the gradients): the host takes Σg².
        var s = Offloaded(1) with { GpusPerNode = 2 };
        var ops = StepScheduler.Build(Tiny, ProfileCatalog.Default.Load("h100-node"), s, false, ProgramShape.Engine).Ops
            .Where(o => o.Kind == OpKind.GradDownload).ToList();

        int storeBytes = Memory.EngineMemory.HostGradientsInBf16(s) ? 2 : 4;
        Assert.NotEmpty(ops);
        Assert.All(ops, o => Assert.Equal(HostAccumulation.SquaresOnly(o.HostAdd.Elements, storeBytes), o.HostAdd));
        Assert.All(ops, o => Assert.True(o.HostAdd.Elements > 0));
    }

    [Fact]
    public void Given_a_download_of_the_only_micro_batch_When_priced_Then_it_costs_its_copy_alone()
    {
        var s = Offloaded(1);
        var program = StepScheduler.Build(Tiny, H200, s, false, ProgramShape.Engine);
        var costs = Simulator.Costs(program, H200, s);
        var download = program.Ops.First(o => o.Kind == OpKind.GradDownload && o.Unit.Kind == UnitKind.Layer);
        var later = Offloaded(2);
        var laterProgram = StepScheduler.Build(Tiny, H200, later, false, ProgramShape.Engine);
        var laterDownload = laterProgram.Ops.First(o => o.Kind == OpKind.GradDownload && o.Unit.Kind == UnitKind.Layer && o.MicroBatch == 1);

        // The same copy with a later micro-batch's add and Σg² costs more: the only micro-batch's copy pays no host pass.
        Assert.Equal(download.Bytes / H200.HostLink!.D2h(pinned: true), costs.Duration(download, Tiny.HiddenSize));
        Assert.True(costs.Duration(laterDownload, Tiny.HiddenSize) > costs.Duration(Copy(laterDownload, default), Tiny.HiddenSize));
    }

    /// <summary><paramref name="o"/> with <paramref name="hostAdd"/> in place of its own.</summary>
    private static Operation Copy(Operation o, HostAccumulation hostAdd) => new()
    {
        Id = o.Id, Kind = o.Kind, Resource = o.Resource, Phase = o.Phase, Unit = o.Unit, SubGroup = o.SubGroup, Slot = o.Slot,
        DeviceSlot = o.DeviceSlot, MicroBatch = o.MicroBatch, Bytes = o.Bytes, Flops = o.Flops, ElementwiseBytes = o.ElementwiseBytes,
        DenseGradientBytes = o.DenseGradientBytes, Parameters = o.Parameters, WriteBackTraffic = o.WriteBackTraffic, IsWrite = o.IsWrite,
        Deps = o.Deps, Effects = o.Effects, HostAdd = hostAdd,
    };
}

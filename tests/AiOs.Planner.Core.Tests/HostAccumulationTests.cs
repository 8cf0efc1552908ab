using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The engine's later micro-batches into CPU RAM: the download packs the gradients in the working precision and queues
/// their copy into one of the pinned staging buffers (the device slot is free when it ends), and a GradAccumulate on the
/// host-sums thread waits for the copy and adds them into the fp32 sums on the host (after the last, Σg² too); a download
/// waits for the add that read its staging buffer last. The costs charge that host work to the accumulate. A step of one micro-batch adds nothing but, on several ranks, still reads each unit's store once for its
/// Σg² after the copy (issue 13: the last two units' on the compute thread before the first update).
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
        var program = StepScheduler.Build(Tiny, H200, Offloaded(3), false, ProgramShape.Engine);
        var downloads = program.Ops.Where(o => o.Kind == OpKind.GradDownload).ToList();
        var adds = program.Ops.Where(o => o.Kind == OpKind.GradAccumulate).ToList();

        // Every download is the copy alone; each later one is followed, on the host-sums thread, by the add of what it copied.
        Assert.All(downloads, o => Assert.Equal(default, o.HostAdd));
        var later = downloads.Where(o => o.MicroBatch > 0).ToList();
        Assert.Equal(2 * (Tiny.NumLayers + 1), later.Count);
        Assert.Equal(later.Count, adds.Count);
        foreach (var download in later)
        {
            var add = program.Ops[download.Id + 1];
            Assert.Equal(OpKind.GradAccumulate, add.Kind);
            Assert.Equal((ResourceKind.HostSums, download.Unit, download.MicroBatch), (add.Resource, add.Unit, add.MicroBatch));
            Assert.Equal([download.Id], add.Deps);
            Assert.Equal(new HostAccumulation(ElementsOf(add), 2, SumsSquares: add.MicroBatch == 2), add.HostAdd);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Given_staging_buffers_When_built_Then_each_later_download_waits_for_the_add_that_read_its_buffer_last_and_no_later_one(int buffers)
    {
        var shape = ProgramShape.Engine with { GradientStagingBuffers = buffers };
        var ops = StepScheduler.Build(Tiny, H200, Offloaded(3), false, shape).Ops;
        var later = ops.Where(o => o.Kind == OpKind.GradDownload && o.MicroBatch > 0).ToList();
        var adds = ops.Where(o => o.Kind == OpKind.GradAccumulate).Select(o => o.Id).ToList();

        for (int k = 0; k < later.Count; k++)
        {
            var waited = later[k].Deps.Where(adds.Contains).ToList();
            // Download k reuses the buffer of download k − buffers; the first ones find theirs unused.
            Assert.Equal(k >= buffers ? [adds[k - buffers]] : [], waited);
        }
    }

    [Fact]
    public void Given_no_staging_buffer_When_a_shape_asks_for_it_Then_it_is_refused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => ProgramShape.Engine with { GradientStagingBuffers = 0 });

    [Fact]
    public void Given_adds_as_long_as_a_layers_passes_When_simulated_Then_two_staging_buffers_shorten_the_step_against_one()
    {
        // A host whose gradient-sum pass is slow: one buffer puts every download behind the previous add, and the uploads into
        // the slots it frees (so the compute) behind the downloads.
        var slow = H200 with { Cpu = H200.Cpu with { HostAddGbps = 0.5 } };
        var s = Offloaded(4);
        SimDuration Step(int buffers)
        {
            var program = StepScheduler.Build(Tiny, slow, s, false, ProgramShape.Engine with { GradientStagingBuffers = buffers });
            return StepSimulator.Simulate(program, Simulator.Costs(program, slow, s)).Time;
        }

        var one = Step(1);
        var two = Step(2);

        Assert.True(two < one, $"two buffers {two} against one {one}");
    }

    [Fact]
    public void Given_a_later_micro_batch_When_built_Then_its_slot_is_free_after_the_download_and_the_update_waits_for_the_add()
    {
        var program = StepScheduler.Build(Tiny, H200, Offloaded(2), false, ProgramShape.Engine);
        var ops = program.Ops;
        var adds = program.Ops.Where(o => o.Kind == OpKind.GradAccumulate).Select(o => o.Id).ToHashSet();

        // Nothing on the device waits for a host add: the uploads into a freed slot and the next backwards wait for the download.
        Assert.DoesNotContain(program.Ops, o => o.Resource is ResourceKind.Compute or ResourceKind.H2d && o.Deps.Any(adds.Contains));
        Assert.Contains(program.Ops, o => o.Kind == OpKind.ParamUpload && o.MicroBatch == 1
            && o.Deps.Any(d => ops[d].Kind == OpKind.GradDownload && ops[d].MicroBatch == 1));
        // The DeepSpeed schedule's first update (the CPU runs the rest after it) waits for every add of the last micro-batch.
        var firstUpdate = program.Ops.First(o => o.Kind == OpKind.OptimizerStep);
        var awaited = ProgramGraph.Ancestors(ops, firstUpdate);
        Assert.All(adds.Where(a => ops[a].MicroBatch == 1), a => Assert.True(awaited.Contains(a), $"{firstUpdate} does not wait for {ops[a]}"));
        // The overlapped schedule updates each unit as its gradients are done: after its own last add.
        var overlapped = StepScheduler.Build(Tiny, H200, Offloaded(2) with { Schedule = StepSchedule.Overlapped }, false, ProgramShape.Engine);
        foreach (var add in overlapped.Ops.Where(o => o.Kind == OpKind.GradAccumulate && o.MicroBatch == 1))
        {
            var update = overlapped.Ops.First(o => o.Kind == OpKind.OptimizerStep && o.SubGroup!.Value.Unit == add.Unit);
            Assert.True(ProgramGraph.Ancestors(overlapped.Ops, update).Contains(add.Id), $"{update} does not wait for {add}");
        }
    }

    [Fact]
    public void Given_several_ranks_with_accumulation_When_built_Then_the_download_adds_itself_and_no_accumulate_is_emitted()
    {
        // Several ranks download without copy streams: the download copies, waits and adds.
        var s = Offloaded(2) with { GpusPerNode = 2 };
        var ops = StepScheduler.Build(Tiny, ProfileCatalog.Default.Load("h100-node"), s, false, ProgramShape.Engine).Ops;

        Assert.DoesNotContain(ops, o => o.Kind == OpKind.GradAccumulate);
        Assert.All(ops.Where(o => o.Kind == OpKind.GradDownload && o.MicroBatch == 1), o => Assert.True(o.HostAdd.Adds && o.HostAdd.Elements > 0, $"{o}"));
    }

    [Fact]
    public void Given_deepspeeds_shape_or_gradients_on_nvme_When_built_Then_no_operation_carries_a_host_add()
    {
        var deepSpeed = StepScheduler.Build(Tiny, H200, Offloaded(3), false, ProgramShape.DeepSpeed).Ops;

        var nvme = StepScheduler.Build(Tiny, H200, Offloaded(3, OffloadTier.Nvme), false, ProgramShape.Engine).Ops;

        Assert.All(deepSpeed, o => Assert.Equal(default, o.HostAdd));
        Assert.Contains(deepSpeed, o => o.Kind == OpKind.GradDownload && o.MicroBatch > 0);
        Assert.All(nvme, o => Assert.Equal(default, o.HostAdd));
        Assert.Contains(nvme, o => o.Kind == OpKind.GradDownload && o.MicroBatch > 0);
        Assert.DoesNotContain(deepSpeed.Concat(nvme), o => o.Kind == OpKind.GradAccumulate);
    }

    [Fact]
    public void Given_a_later_micro_batch_When_priced_Then_its_download_costs_the_copy_and_its_add_the_host_passes()
    {
        var s = Offloaded(2);
        var program = StepScheduler.Build(Tiny, H200, s, false, ProgramShape.Engine);
        var costs = Simulator.Costs(program, H200, s);
        var pass = HostPass.Of(H200.Cpu, processes: 1);
        var download = program.Ops.First(o => o.Kind == OpKind.GradDownload && o.MicroBatch == 1 && o.Unit.Kind == UnitKind.Layer);
        var add = program.Ops[download.Id + 1];

        Assert.Equal(download.Bytes / H200.HostLink!.D2h(pinned: true), costs.Duration(download, Tiny.HiddenSize));
        Assert.Equal(pass.Time(Tiny.LayerParameters, 10, HostSplit.Even) + pass.Time(Tiny.LayerParameters, 4), costs.Duration(add, Tiny.HiddenSize));
    }

    [Theory]
    [InlineData(1000.0)] // adds far shorter than the step's copies: the copies cover them whole
    [InlineData(0.5)]    // adds far longer: the copies cover a part
    public void Given_a_measured_share_beside_the_copies_When_an_add_is_priced_Then_its_add_pass_is_slowed_as_far_as_the_copies_cover_it_and_its_squares_are_not(double addGbps)
    {
        var s = Offloaded(2);
        var alone = H200 with { Cpu = H200.Cpu with { HostAddGbps = addGbps } };
        var shared = alone with { HostLink = H200.HostLink! with { HostAddShareBesideCopies = 0.5 } };
        var program = StepScheduler.Build(Tiny, alone, s, false, ProgramShape.Engine);
        var add = program.Ops.First(o => o.Kind == OpKind.GradAccumulate && o.Unit.Kind == UnitKind.Layer);
        Assert.True(add.HostAdd.SumsSquares);
        var squares = HostPass.Of(H200.Cpu, processes: 1).Time(Tiny.LayerParameters, 4);

        double aloneAdd = (Simulator.Costs(program, alone, s).Duration(add, Tiny.HiddenSize) - squares).Nanoseconds;
        double besideAdd = (Simulator.Costs(program, shared, s).Duration(add, Tiny.HiddenSize) - squares).Nanoseconds;

        if (addGbps > 100) Assert.Equal(2.0, besideAdd / aloneAdd, 3);
        else Assert.InRange(besideAdd / aloneAdd, 1.0001, 1.9);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1.2)]
    public void Given_a_share_outside_its_range_When_the_profile_is_validated_Then_it_is_refused_naming_the_field(double share)
    {
        var bad = H200 with { HostLink = H200.HostLink! with { HostAddShareBesideCopies = share } };

        var e = Assert.ThrowsAny<Exception>(() => bad.Validated("bad.json"));

        Assert.Contains("host_add_share_beside_copies", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_gradient_accumulation_in_cpu_ram_When_the_step_is_predicted_Then_the_adds_lengthen_it_by_the_last_but_overlap_the_rest()
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

        // The last add ends the backward (the update waits for it); the others run while later layers' passes do.
        var adds = program.Ops.Where(o => o.Kind == OpKind.GradAccumulate).Select(o => costs.Duration(o, Tiny.HiddenSize)).ToList();
        Assert.True(full - copiesOnly >= adds[^1], $"{full} vs {copiesOnly}: not the last add's {adds[^1]} longer");
        Assert.True((full - copiesOnly).Seconds < adds.Sum(a => a.Seconds) / 2, $"{full} vs {copiesOnly}: the adds did not overlap the passes");
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

        Assert.Equal(download.Bytes / H200.HostLink!.D2h(pinned: true), costs.Duration(download, Tiny.HiddenSize));
        Assert.DoesNotContain(program.Ops, o => o.Kind == OpKind.GradAccumulate);
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

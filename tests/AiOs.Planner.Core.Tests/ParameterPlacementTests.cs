using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;
using FsCheck;
using FsCheck.Fluent;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// max_in_cpu for parameters on NVMe in the bundled engine: the one rule, the engine's step program and its memory plan
/// that follow it, and DeepSpeed's shape, which does not.
/// </summary>
public class ParameterPlacementTests
{
    private static readonly ModelSpec Tiny = ModelCatalog.Default.Load("tiny-gpt") with { NumLayers = 4 };
    private static readonly HardwareProfile Cpu = ProfileCatalog.Default.Load("ci-2core-24gb");
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x");
    private static readonly long Outer = EngineMemory.OuterElements(Tiny);
    private static readonly long Layer = Tiny.LayerParameters;

    /// <summary>Parameters and optimizer on NVMe with max_in_cpu holding the outer block and layers 0 and 1 (half of the units' layers).</summary>
    private static TrainingSettings Nvme(long maxInCpu) => new()
    {
        ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Nvme, NvmePath = "/tmp",
        MicroBatch = 1, SeqLen = 16, GradAccumulation = 2, SubGroupSize = 1000, BufferCount = 2, BufferSize = 1_000_000,
        PrefetchDepth = 1, MaxInCpu = maxInCpu,
    };

    private static readonly long Half = Outer + 2 * Layer;

    [Fact]
    public void Given_max_in_cpu_When_split_Then_the_longest_prefix_that_fits_stays_in_ram()
    {
        Assert.Equal([false, false, false], ParameterPlacement.InRam([10, 20, 30], 0));
        Assert.Equal([false, false, false], ParameterPlacement.InRam([10, 20, 30], 9));
        Assert.Equal([true, true, false], ParameterPlacement.InRam([10, 20, 30], 59));
        // 10 fits, 10 + 20 does not; the 5 after it would, but a prefix never skips a unit.
        Assert.Equal([true, false, false, false], ParameterPlacement.InRam([10, 20, 30, 5], 29));
        Assert.Equal([true, true, true], ParameterPlacement.InRam([10, 20, 30], 60));
    }

    [Fact]
    public void Given_any_units_When_max_in_cpu_grows_Then_a_superset_stays_in_ram_within_the_count()
    {
        var cases =
            from units in Gen.ListOf(Gen.Choose(0, 1000).Select(x => (long)x))
            from a in Gen.Choose(0, 5000)
            from b in Gen.Choose(0, 5000)
            select (units.ToArray(), (long)Math.Min(a, b), (long)Math.Max(a, b));
        Prop.ForAll(cases.ToArbitrary(), c =>
        {
            var (units, small, large) = c;
            bool[] fewer = ParameterPlacement.InRam(units, small), more = ParameterPlacement.InRam(units, large);
            long kept = units.Where((_, i) => more[i]).Sum();
            return fewer.Zip(more).All(x => !x.First || x.Second) && kept <= large;
        }).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void Given_the_engine_units_When_placed_Then_the_outer_block_and_the_first_layers_stay_in_ram()
    {
        Assert.Equal([true, true, false, false, true], ParameterPlacement.EngineUnitsInRam(Tiny, Nvme(Half), 1));
        Assert.Equal([false, false, false, false, true], ParameterPlacement.EngineUnitsInRam(Tiny, Nvme(Outer + Layer - 1), 1));
        Assert.All(ParameterPlacement.EngineUnitsInRam(Tiny, Nvme(0), 1), Assert.False);
        Assert.All(ParameterPlacement.EngineUnitsInRam(Tiny, Nvme(Half) with { ParamOffload = OffloadTier.Cpu }, 1), Assert.False);
        Assert.Equal((Half, 2 * Layer), ParameterPlacement.EngineSplit(Tiny, Nvme(Half), 1));
    }

    [Fact]
    public void Given_two_ranks_When_placed_Then_max_in_cpu_counts_each_ranks_shard()
    {
        long shards = (Outer + 1) / 2 + (Layer + 1) / 2;
        // One process: the outer block fits, the first layer does not. Two ranks: each holds half of both.
        Assert.Equal([false, false, false, false, true], ParameterPlacement.EngineUnitsInRam(Tiny, Nvme(shards), 1));
        Assert.Equal([true, false, false, false, true], ParameterPlacement.EngineUnitsInRam(Tiny, Nvme(shards), 2));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Given_the_engine_shape_When_max_in_cpu_keeps_units_Then_they_are_uploaded_from_ram_with_no_nvme_read(bool gpu)
    {
        var program = StepScheduler.Build(Tiny, gpu ? H200 : Cpu, Nvme(Half), false, ProgramShape.Engine);
        var kept = new[] { UnitId.Outer, UnitId.Layer(0), UnitId.Layer(1) };
        var swapped = new[] { UnitId.Layer(2), UnitId.Layer(3) };

        Assert.DoesNotContain(program.Ops, o => o.Kind == OpKind.ParamRead && kept.Contains(o.Unit));
        Assert.All(swapped, u => Assert.Contains(program.Ops, o => o.Kind == OpKind.ParamRead && o.Unit == u));
        // Uploads of kept units use no staging slot (they come from the unit's host copy, as with the CPU tier).
        Assert.All(program.Ops.Where(o => o.Kind == OpKind.ParamUpload && kept.Contains(o.Unit)), o => Assert.Equal(-1, o.Slot));
        Assert.All(program.Ops.Where(o => o.Kind == OpKind.ParamUpload && swapped.Contains(o.Unit)), o => Assert.True(o.Slot >= 0, $"{o} has no staging slot"));
        // Write-backs after the optimizer: kept units to RAM (the CPU), the rest to NVMe.
        var writeBacks = program.Ops.Where(o => o.Kind == OpKind.ParamWriteBack).ToList();
        Assert.All(writeBacks.Where(o => kept.Contains(o.Unit)), o => Assert.Equal(ResourceKind.Cpu, o.Resource));
        Assert.All(writeBacks.Where(o => swapped.Contains(o.Unit)), o => Assert.Equal(ResourceKind.Nvme, o.Resource));
        Assert.Equal(Bytes.OfElements(Tiny.TotalParameters, 2), writeBacks.Aggregate(Bytes.Zero, (s, o) => s + o.Bytes));
    }

    [Fact]
    public void Given_the_engine_shape_When_max_in_cpu_keeps_units_Then_nvme_traffic_drops_by_their_bytes()
    {
        var all = StepScheduler.Build(Tiny, Cpu, Nvme(0), false, ProgramShape.Engine);
        var half = StepScheduler.Build(Tiny, Cpu, Nvme(Half), false, ProgramShape.Engine);
        static long OnNvme(StepProgram p, OpKind kind) => p.Ops.Where(o => o.Kind == kind && o.Resource == ResourceKind.Nvme).Sum(o => o.Bytes.Value);

        // Exactly the kept units' reads go: per micro-batch (2) the outer block once, layers 0 and 1 twice (forward and backward).
        var kept = new[] { UnitId.Outer, UnitId.Layer(0), UnitId.Layer(1) };
        var keptReads = all.Ops.Where(o => o.Kind == OpKind.ParamRead && kept.Contains(o.Unit)).ToList();
        Assert.Equal(2 + 2 * 2 * 2, keptReads.Count);
        Assert.Equal(keptReads.Sum(o => o.Bytes.Value), OnNvme(all, OpKind.ParamRead) - OnNvme(half, OpKind.ParamRead));
        Assert.True(OnNvme(half, OpKind.ParamRead) >= 2 * 2 * 2 * Layer * 2, "layers 2 and 3 are still read");
        Assert.Equal(Half * 2, OnNvme(all, OpKind.ParamWriteBack) - OnNvme(half, OpKind.ParamWriteBack));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Given_max_in_cpu_zero_When_the_engine_program_is_built_Then_it_is_the_program_that_ignores_the_setting(bool gpu)
    {
        var hw = gpu ? H200 : Cpu;
        var zero = StepScheduler.Build(Tiny, hw, Nvme(0), false, ProgramShape.Engine);
        var ignoring = StepScheduler.Build(Tiny, hw, Nvme(1_000_000_000), false, ProgramShape.Engine with { HonoursMaxInCpu = false });
        Assert.Equal(Describe(ignoring), Describe(zero));
    }

    [Fact]
    public void Given_the_deepspeed_shape_When_max_in_cpu_changes_Then_the_program_is_the_same()
    {
        var zero = StepScheduler.Build(Tiny, H200, Nvme(0));
        var large = StepScheduler.Build(Tiny, H200, Nvme(1_000_000_000));
        Assert.Equal(Describe(zero), Describe(large));
        Assert.Contains(large.Ops, o => o.Kind == OpKind.ParamRead);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Given_the_aios_plan_When_max_in_cpu_keeps_units_Then_ram_grows_and_nvme_shrinks_by_their_bytes(bool gpu)
    {
        var hw = gpu ? H200 : Cpu;
        var none = MemoryPlanner.Plan(Tiny, hw, Nvme(0));
        var half = MemoryPlanner.Plan(Tiny, hw, Nvme(Half));
        var ram = gpu ? half.CpuPinned : half.CpuPageable;
        static Bytes Page(long elements) => new((elements * 2 + 4095) / 4096 * 4096);

        Assert.Equal(Page(Outer) + Page(Layer) * 2, ram.Of(EngineMemory.KeptParametersItem));
        Assert.Equal(Bytes.OfElements(Tiny.TotalParameters, 2), none.Nvme.Of("parameters"));
        Assert.Equal(Bytes.OfElements(2 * Layer, 2), half.Nvme.Of("parameters"));
        Assert.Equal(Bytes.OfElements(Half, 2), none.Nvme.Peak - half.Nvme.Peak);
        // The outer block is no longer staged: its staging buffer goes; the layers' buffers stay for layers 2 and 3.
        Assert.Equal(Page(Layer) * 2, half.CpuPageable.Of("parameter staging buffers"));
        Assert.Equal(Bytes.OfElements(Half, 2), half.ModelStatesCpu - none.ModelStatesCpu);
        Assert.DoesNotContain(none.CpuPinned.Items.Concat(none.CpuPageable.Items), i => i.Name == EngineMemory.KeptParametersItem);
    }

    [Fact]
    public void Given_the_deepspeed_executor_When_max_in_cpu_changes_Then_the_plan_is_the_same()
    {
        var zero = MemoryPlanner.Plan(Tiny, H200, Nvme(0) with { Executor = ExecutorKind.DeepSpeed });
        var large = MemoryPlanner.Plan(Tiny, H200, Nvme(Half) with { Executor = ExecutorKind.DeepSpeed });
        Assert.Equal(zero.Nvme.Peak, large.Nvme.Peak);
        Assert.Equal(zero.CpuPeak, large.CpuPeak);
    }

    /// <summary>Every field of every op that a program's behaviour depends on, one line each.</summary>
    private static List<string> Describe(StepProgram p) => p.Ops.Select(o =>
        $"{o} deps[{string.Join(',', o.Deps)}] {o.Bytes.Value} {o.Flops} {o.ElementwiseBytes} {o.Parameters} {o.IsWrite} {o.Slot} {o.DeviceSlot} {o.SubGroup} "
        + string.Join(';', o.Effects.Select(e => e.ToString()))).ToList();
}

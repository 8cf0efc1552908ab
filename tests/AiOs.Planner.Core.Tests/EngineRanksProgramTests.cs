using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// Issue 18: the aios executor on several GPUs of one host is predicted with the engine's own program (one per rank):
/// offloaded parameters partitioned and all-gathered before each use (ZeRO-3), device-resident ones whole on every rank
/// and gathered once after the optimizer (ZeRO-2), each unit's gradients reduce-scattered per micro-batch.
/// </summary>
public sealed class EngineRanksProgramTests
{
    private static readonly ModelSpec Gpt2 = ModelCatalog.Default.Load("gpt2");
    private static readonly string[] PerParameterItems = ["optimizer states", "gradients"];
    private static readonly HardwareProfile TwoGpus = ProfileCatalog.Default.Load("consumer-2x11gb-64gb-pcie4");

    private static TrainingSettings Aios(OffloadTier parameters) => new()
    {
        Executor = ExecutorKind.Aios,
        ZeroStage = ZeroStage.Zero3,
        GpusPerNode = 2,
        MicroBatch = 2,
        GradAccumulation = 2,
        SeqLen = 256,
        Precision = Precision.Bf16,
        ActivationCheckpointing = true,
        ParamOffload = parameters,
        OptimizerOffload = OffloadTier.Cpu,
    };

    private static List<Operation> Ops(TrainingSettings s) => [.. StepScheduler.Build(Gpt2, TwoGpus, s, false, ProgramShape.For(s, TwoGpus)).Ops];

    [Fact]
    public void Given_OffloadedParametersOnTwoGpus_When_Planned_Then_EachUseGathersTheShardsAndEachMicroBatchReduceScattersEveryUnit()
    {
        TrainingSettings s = Aios(OffloadTier.Cpu);
        Assert.Same(ProgramShape.Engine, ProgramShape.For(s, TwoGpus));
        var ops = Ops(s);

        var uploads = ops.Where(o => o.Kind == OpKind.ParamUpload).ToList();
        var gathers = ops.Where(o => o.Kind == OpKind.AllGather).ToList();
        Assert.Equal(uploads.Count, gathers.Count);
        // Each rank uploads its shard (half the unit) and gathers the whole unit into the same device slot.
        foreach (var (upload, gather) in uploads.Zip(gathers))
        {
            Assert.Equal(upload.DeviceSlot, gather.DeviceSlot);
            Assert.InRange(gather.Bytes.Value, 2 * upload.Bytes.Value - 8, 2 * upload.Bytes.Value);
        }
        var scatters = ops.Where(o => o.Kind == OpKind.ReduceScatter).ToList();
        Assert.Equal(ops.Count(o => o.Kind == OpKind.GradDownload), scatters.Count);
        Assert.Equal(s.GradAccumulation * (Gpt2.NumLayers + 1), scatters.Count);
        Assert.DoesNotContain(ops, o => o.Kind == OpKind.AllGather && o.Unit.Kind == UnitKind.Model);
    }

    [Fact]
    public void Given_DeviceResidentParametersOnTwoGpus_When_Planned_Then_TheyAreGatheredOnceAfterTheOptimizerNotBeforeEachUse()
    {
        var ops = Ops(Aios(OffloadTier.None));

        var gathers = ops.Where(o => o.Kind == OpKind.AllGather).ToList();
        var gather = Assert.Single(gathers);
        Assert.Equal(UnitKind.Model, gather.Unit.Kind);
        Assert.Equal(StepPhase.Optimizer, gather.Phase);
        Assert.Contains(ops, o => o.Kind == OpKind.ReduceScatter);
    }

    [Fact]
    public void Given_TwoGpus_When_TheAiosExecutorIsSimulated_Then_TheCollectivesTakeTimeOnTheProfilesLinks()
    {
        var plan = Planning.TrainingPlanner.Plan(Gpt2, TwoGpus, Aios(OffloadTier.Cpu));

        Assert.NotNull(plan.Step);
        Assert.True(plan.Step!.Busy.TryGetValue(ResourceKind.Collective, out var busy) && busy.Seconds > 0, "the collectives took no time");
    }

    [Theory]
    [InlineData(OffloadTier.Cpu)]
    [InlineData(OffloadTier.None)]
    public void Given_TwoRanksOnOneHost_When_TheirHostMemoryIsPlanned_Then_PerParameterStateIsSplitAndPerProcessItemsAreTwice(OffloadTier parameters)
    {
        Bytes Item(Memory.MemoryPlan plan, string name) => plan.CpuPinned.Items.Concat(plan.CpuPageable.Items).Where(i => i.Name == name).Aggregate(Bytes.Zero, (a, i) => a + i.Bytes);
        var one = Memory.EngineMemory.Plan(Gpt2, TwoGpus, Aios(parameters) with { GpusPerNode = 1 });
        var two = Memory.EngineMemory.Plan(Gpt2, TwoGpus, Aios(parameters));

        foreach (string name in PerParameterItems.Concat(parameters == OffloadTier.Cpu ? ["parameters"] : []))
        {
            Assert.True(Item(one, name) > Bytes.Zero, name);
            // Each rank's shard is padded to the ranks and each unit to a page: the two halves come to the whole, a few pages more.
            Assert.InRange(Item(two, name).Value, Item(one, name).Value - 16, Item(one, name).Value + 64L * 4096 * (Gpt2.NumLayers + 1));
        }
        Assert.Equal(Item(one, "runtime baseline") * 2, Item(two, "runtime baseline"));
        Assert.Equal(one.ModelStatesCpu, two.ModelStatesCpu);
    }

    [Fact]
    public void Given_TwoRanksWithAnOptimizerRamBudget_When_Planned_Then_EachRankKeepsItsBudgetOfItsShardAndTheRestOfTheNodesStateIsOnNvme()
    {
        var s = Aios(OffloadTier.Cpu) with { OptimizerOffload = OffloadTier.Nvme, NvmePath = "/nvme", SubGroupSize = 1_000_000 };
        long budgetElements = Gpt2.TotalParameters / 8;
        var budgeted = s with { OptimizerRamBudget = Bytes.OfElements(budgetElements, 12) };
        var whole = Memory.EngineMemory.Plan(Gpt2, TwoGpus, s with { OptimizerRamBudget = Bytes.OfElements(Gpt2.TotalParameters, 12) });
        var plan = Memory.EngineMemory.Plan(Gpt2, TwoGpus, budgeted);

        Bytes Ram(Memory.MemoryPlan p) => p.CpuPinned.Items.Concat(p.CpuPageable.Items).Where(i => i.Name == "optimizer states").Aggregate(Bytes.Zero, (a, i) => a + i.Bytes);
        Bytes Nvme(Memory.MemoryPlan p) => p.Nvme.Items.Where(i => i.Name == "optimizer states").Aggregate(Bytes.Zero, (a, i) => a + i.Bytes);
        // Both ranks keep (at most) the budget of their own shard: twice the budget in the node's RAM, the rest on NVMe.
        Assert.InRange(Ram(plan).Value, 2 * Bytes.OfElements(budgetElements, 12).Value - 2 * 12 * 1_000_000, 2 * Bytes.OfElements(budgetElements, 12).Value);
        Assert.InRange((Ram(plan) + Nvme(plan)).Value, Ram(whole).Value - 4096, Ram(whole).Value + 12L * 2 * (Gpt2.NumLayers + 1));
        Assert.Equal(Bytes.Zero, Nvme(whole));
    }
}

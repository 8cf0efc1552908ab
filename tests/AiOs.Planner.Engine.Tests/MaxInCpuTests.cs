using AiOs.Planner.Engine.Collectives;
using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// max_in_cpu with parameters on NVMe: the units <see cref="ParameterPlacement"/> keeps in RAM train exactly as the
/// reference, and only the other units' bytes are read from NVMe.
/// </summary>
[Collection(nameof(TorchGlobalRandom))]
public sealed class MaxInCpuTests : IDisposable
{
    private const int Steps = 6;
    private readonly string _nvme = Directory.CreateTempSubdirectory("aios-nvme-").FullName;

    public void Dispose() => Directory.Delete(_nvme, recursive: true);

    private static readonly ModelSpec Tiny = ModelCatalog.Default.Load("tiny-gpt");

    /// <summary>The outer block and layer 0 of tiny-gpt's two layers in RAM; layer 1 on NVMe.</summary>
    private static readonly long Half = EngineMemory.OuterElements(Tiny) + Tiny.LayerParameters;

    private TrainingSettings OnNvme(long maxInCpu, OffloadTier optimizer, StepSchedule schedule, Precision precision = Precision.Fp32) =>
        LayerwiseTrainerTests.Small(precision) with
        {
            ParamOffload = OffloadTier.Nvme, OptimizerOffload = optimizer, Schedule = schedule, NvmePath = _nvme, MaxInCpu = maxInCpu,
        };

    private static (double[] Losses, float[][] Master, IoTotals Io) Train(TrainingSettings settings, bool reference)
    {
        var data = TokenDataset.Load(BundledText.DefaultPath);
        var options = LayerwiseTrainerTests.Options();
        TokenBatch Batch(int step, int micro) => data.Sample(options.Seed, step, micro, settings.MicroBatch, settings.SeqLen);
        var losses = new double[Steps];
        if (reference)
        {
            using var r = new ReferenceTrainer(Tiny, settings, options);
            for (int s = 0; s < Steps; s++) losses[s] = r.Step(m => Batch(s, m)).Loss;
            return (losses, Enumerable.Range(0, Tiny.NumLayers + 1).Select(r.MasterOf).ToArray(), new IoCounters().Snapshot());
        }
        using var t = new LayerwiseTrainer(Tiny, settings, options);
        var before = t.Io.Snapshot();
        for (int s = 0; s < Steps; s++) losses[s] = t.Step(m => Batch(s, m)).Loss;
        return (losses, Enumerable.Range(0, Tiny.NumLayers + 1).Select(t.MasterOf).ToArray(), t.Io.Snapshot().Minus(before));
    }

    [Theory]
    [InlineData(OffloadTier.Cpu, StepSchedule.DeepSpeed)]
    [InlineData(OffloadTier.Nvme, StepSchedule.Overlapped)]
    public void Given_half_the_units_kept_in_ram_When_trained_Then_losses_and_weights_equal_the_reference_and_only_the_rest_is_read_from_nvme(
        OffloadTier optimizer, StepSchedule schedule)
    {
        TrainingSettings settings = OnNvme(Half, optimizer, schedule);
        Assert.Equal([true, false], ParameterPlacement.EngineUnitsInRam(Tiny, settings, 1).Take(2));

        var (losses, master, io) = Train(settings, reference: false);
        var (refLosses, refMaster, _) = Train(settings, reference: true);
        var (_, _, allOnNvme) = Train(settings with { MaxInCpu = 0 }, reference: false);

        for (int s = 0; s < Steps; s++) Assert.Equal(refLosses[s], losses[s], 5);
        for (int u = 0; u < master.Length; u++)
            for (int i = 0; i < master[u].Length; i++) Assert.Equal(refMaster[u][i], master[u][i], 1e-5f);
        // Per step: the outer block is read once per micro-batch and each layer twice (forward and backward); kept units never.
        long layerBytes = Tiny.LayerParameters * 4, outerBytes = EngineMemory.OuterElements(Tiny) * 4;
        long optimizerReads = allOnNvme.NvmeRead.Value - (outerBytes + 2 * Tiny.NumLayers * layerBytes) * settings.GradAccumulation * Steps;
        Assert.Equal(2 * layerBytes * settings.GradAccumulation * Steps, io.NvmeRead.Value - optimizerReads);
        // Write-backs of kept units go to RAM: NVMe takes only layer 1's.
        Assert.Equal(allOnNvme.NvmeWritten.Value - (outerBytes + layerBytes) * Steps, io.NvmeWritten.Value);
    }

    [Fact]
    public void Given_bf16_and_every_unit_kept_in_ram_When_trained_Then_losses_equal_the_reference_and_no_parameter_touches_nvme()
    {
        TrainingSettings settings = OnNvme(1_000_000_000, OffloadTier.Cpu, StepSchedule.DeepSpeed, Precision.Bf16);

        var (losses, _, io) = Train(settings, reference: false);
        var (refLosses, _, _) = Train(settings, reference: true);

        for (int s = 0; s < Steps; s++) Assert.Equal(refLosses[s], losses[s], 4);
        Assert.Equal(0, io.NvmeRead.Value);
        Assert.Equal(0, io.NvmeWritten.Value);
    }

    [Fact]
    public void Given_two_ranks_When_max_in_cpu_holds_each_ranks_shards_of_the_outer_block_and_layer_0_Then_they_stay_in_ram_and_training_equals_one_rank()
    {
        const int world = 2, perRank = 2;
        long shard(long elements) => (elements + world - 1) / world;
        long maxInCpu = shard(EngineMemory.OuterElements(Tiny)) + shard(Tiny.LayerParameters);
        TrainingSettings ranked = OnNvme(maxInCpu, OffloadTier.Cpu, StepSchedule.DeepSpeed) with { GradAccumulation = perRank };
        // One process would keep only the outer block under this count: the count is per rank's shard.
        Assert.Equal([false, false, true], ParameterPlacement.EngineUnitsInRam(Tiny, ranked, 1));
        Assert.Equal([true, false, true], ParameterPlacement.EngineUnitsInRam(Tiny, ranked, world));
        var options = LayerwiseTrainerTests.Options();
        var data = TokenDataset.Load(BundledText.DefaultPath);
        (double[] Losses, float[][] Master, IoTotals Io) Run(TrainingSettings settings, ICollectives? ranks)
        {
            using var t = new LayerwiseTrainer(Tiny, settings, options with { RunId = $"mic-r{ranks?.Rank ?? 0}-{Guid.NewGuid():N}" }, ranks: ranks);
            var before = t.Io.Snapshot();
            var losses = new double[Steps];
            for (int s = 0; s < Steps; s++)
            {
                int step = s;
                losses[s] = t.Step(m => data.Sample(options.Seed, step, m, settings.MicroBatch, settings.SeqLen)).Loss;
            }
            return (losses, Enumerable.Range(0, Tiny.NumLayers + 1).Select(t.MasterOf).ToArray(), t.Io.Snapshot().Minus(before));
        }

        var one = Run(ranked with { GradAccumulation = perRank * world, MaxInCpu = 0 }, null);
        var ranks = CollectiveThreads.Run(world, c => Run(ranked, c), regionBytes: 1 << 20);

        foreach (var (losses, master, io) in ranks)
        {
            for (int s = 0; s < Steps; s++) Assert.Equal(one.Losses[s], losses[s], 1e-5);
            for (int u = 0; u < master.Length; u++)
                RankAgreement.AssertClose(one.Master[u], master[u], $"unit {u} against one rank's");
            // Only layer 1's shard comes from NVMe: forward and backward, per micro-batch, per step.
            Assert.Equal(shard(Tiny.LayerParameters) * 4 * 2 * perRank * Steps, io.NvmeRead.Value);
        }
    }

    [Fact]
    public void Given_max_in_cpu_zero_When_the_engine_program_is_built_Then_every_unit_is_read_from_nvme()
    {
        StepProgram program = EngineProgram.For(Tiny, OnNvme(0, OffloadTier.Cpu, StepSchedule.DeepSpeed));
        Assert.Contains(program.Ops, o => o.Kind == OpKind.ParamRead && o.Unit == UnitId.Outer);
        Assert.All(Enumerable.Range(0, Tiny.NumLayers), i => Assert.Contains(program.Ops, o => o.Kind == OpKind.ParamRead && o.Unit == UnitId.Layer(i)));
    }
}

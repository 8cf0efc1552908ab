using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// The optimizer RAM budget in the engine: some sub-groups updated in place in RAM, the rest through the NVMe swap
/// buffers, with exactly the losses and weights of all-RAM and all-NVMe runs, and less NVMe traffic than all-NVMe.
/// </summary>
[Collection(nameof(TorchGlobalRandom))]
public sealed class MixedOptimizerPlacementTests : IDisposable
{
    private const int Steps = 6;
    private readonly string _nvme = Directory.CreateTempSubdirectory("aios-mixed-").FullName;

    public void Dispose() => Directory.Delete(_nvme, recursive: true);

    private sealed record Outcome(double[] Losses, float[][] Master, Bytes NvmeRead, Bytes NvmeWritten, StepProgram Program);

    private static Outcome Run(ModelSpec spec, TrainingSettings settings)
    {
        var options = LayerwiseTrainerTests.Options();
        var data = TokenDataset.Load(BundledText.DefaultPath);
        var losses = new double[Steps];
        using var t = new LayerwiseTrainer(spec, settings, options);
        var before = t.Io.Snapshot();
        for (int s = 0; s < Steps; s++) losses[s] = t.Step(m => data.Sample(options.Seed, s, m, settings.MicroBatch, settings.SeqLen)).Loss;
        var io = t.Io.Snapshot().Minus(before);
        return new Outcome(losses, Enumerable.Range(0, spec.NumLayers + 1).Select(t.MasterOf).ToArray(), io.NvmeRead, io.NvmeWritten, t.Program);
    }

    /// <summary>A budget holding about half of tiny-gpt's optimizer state (12 bytes per element).</summary>
    private static Bytes HalfTheState(ModelSpec spec, TrainingSettings s)
    {
        var order = OptimizerPlacement.EngineUpdateOrder(spec.NumLayers, spec.LayerParameters, spec.EmbeddingParameters + spec.HeadParameters, s);
        return Bytes.OfElements(order.Sum() / 2, 12);
    }

    [Theory]
    [InlineData(StepSchedule.DeepSpeed, OffloadTier.Nvme)]
    [InlineData(StepSchedule.Overlapped, OffloadTier.Cpu)]
    [InlineData(StepSchedule.DeepSpeed, OffloadTier.Cpu)]
    public void Given_a_budget_splitting_the_sub_groups_When_trained_Then_losses_and_weights_equal_all_RAM_and_all_NVMe_exactly(StepSchedule schedule, OffloadTier parameters)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings nvme = LayerwiseTrainerTests.Small() with
        {
            ParamOffload = parameters, OptimizerOffload = OffloadTier.Nvme, Schedule = schedule, NvmePath = _nvme, PipelineRead = true,
        };
        TrainingSettings mixed = nvme with { OptimizerRamBudget = HalfTheState(spec, nvme) };
        TrainingSettings ram = nvme with { OptimizerOffload = OffloadTier.Cpu, PipelineRead = false };

        Outcome allNvme = Run(spec, nvme), split = Run(spec, mixed), allRam = Run(spec, ram);

        // The budget did split: some sub-groups kept in RAM, some swapped, and no write for a kept one.
        var groups = split.Program.Ops.Where(o => o.SubGroup is not null && o.Kind == OpKind.OptimizerStep).Select(o => o.SubGroup!.Value).ToList();
        Assert.Contains(groups, g => g.KeptInRam);
        Assert.Contains(groups, g => !g.KeptInRam);
        Assert.DoesNotContain(split.Program.Ops, o => o.Kind == OpKind.OptimizerWrite && o.SubGroup!.Value.KeptInRam);
        Assert.True(split.NvmeWritten < allNvme.NvmeWritten, $"NVMe writes: mixed {split.NvmeWritten}, all NVMe {allNvme.NvmeWritten}.");
        Assert.True(split.NvmeWritten >= allRam.NvmeWritten);
        Assert.Equal(allNvme.Losses, split.Losses);
        Assert.Equal(allRam.Losses, split.Losses);
        for (int u = 0; u < split.Master.Length; u++)
        {
            Assert.Equal(allNvme.Master[u], split.Master[u]);
            Assert.Equal(allRam.Master[u], split.Master[u]);
        }
    }

    [Fact]
    public void Given_a_budget_above_the_whole_state_When_trained_Then_no_optimizer_state_touches_NVMe()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings s = LayerwiseTrainerTests.Small() with
        {
            ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Nvme, NvmePath = _nvme, OptimizerRamBudget = Bytes.FromGiB(1),
            // Gradients would follow the optimizer to NVMe; kept in RAM here so NVMe carries nothing at all.
            GradientOffload = OffloadTier.Cpu,
        };

        Outcome o = Run(spec, s);

        Assert.Equal(Bytes.Zero, o.NvmeRead);
        Assert.Equal(Bytes.Zero, o.NvmeWritten);
        Assert.DoesNotContain(o.Program.Ops, op => op.Kind is OpKind.OptimizerRead or OpKind.OptimizerWrite);
    }
}

using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// 8-bit optimizer state under the optimizer RAM budget: sub-groups kept in RAM hold their master and 8-bit moments
/// there, the rest swap [master | 8-bit moments] through NVMe, and the run equals all-RAM and all-NVMe 8-bit runs exactly.
/// </summary>
[Collection(nameof(TorchGlobalRandom))]
public sealed class EightBitMixedPlacementTests : IDisposable
{
    private const int Steps = 4;
    private readonly string _nvme = Directory.CreateTempSubdirectory("aios-8bit-mixed-").FullName;

    public void Dispose() => Directory.Delete(_nvme, recursive: true);

    private sealed record Outcome(double[] Losses, float[][] Master, Bytes NvmeWritten, StepProgram Program);

    private static Outcome Run(ModelSpec spec, TrainingSettings settings)
    {
        var options = LayerwiseTrainerTests.Options();
        var data = TokenDataset.Load(BundledText.DefaultPath);
        var losses = new double[Steps];
        using var t = new LayerwiseTrainer(spec, settings, options);
        var before = t.Io.Snapshot();
        for (int s = 0; s < Steps; s++) losses[s] = t.Step(m => data.Sample(options.Seed, s, m, settings.MicroBatch, settings.SeqLen)).Loss;
        var io = t.Io.Snapshot().Minus(before);
        return new Outcome(losses, Enumerable.Range(0, spec.NumLayers + 1).Select(t.MasterOf).ToArray(), io.NvmeWritten, t.Program);
    }

    [Fact]
    public void Given_8bit_state_and_a_budget_splitting_the_sub_groups_When_trained_Then_losses_and_weights_equal_all_RAM_and_all_NVMe_exactly()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings nvme = LayerwiseTrainerTests.Small() with
        {
            ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Nvme, NvmePath = _nvme, GradientOffload = OffloadTier.Cpu,
            OptimizerState = OptimizerStateFormat.EightBit,
        };
        var order = OptimizerPlacement.EngineUpdateOrder(spec.NumLayers, spec.LayerParameters, spec.EmbeddingParameters + spec.HeadParameters, nvme);
        // Half the 8-bit state: at 12 bytes per element this budget would keep only about a quarter of the sub-groups.
        var half = new Bytes((long)(order.Sum() / 2 * OptimizerStateFormat.EightBit.BytesPerParameter()));
        TrainingSettings mixed = nvme with { OptimizerRamBudget = half };
        TrainingSettings ram = nvme with { OptimizerOffload = OffloadTier.Cpu, NvmePath = null };

        Outcome allNvme = Run(spec, nvme), split = Run(spec, mixed), allRam = Run(spec, ram);

        bool[] expected = OptimizerPlacement.InRam(order, OptimizerStateFormat.EightBit.BytesPerParameter(), half);
        var kept = split.Program.Ops.Where(o => o.SubGroup is not null && o.Kind == OpKind.OptimizerStep).Select(o => o.SubGroup!.Value).Where(g => g.KeptInRam).ToList();
        Assert.Equal(expected.Count(x => x), kept.Count);
        Assert.True(expected.Count(x => x) > OptimizerPlacement.InRam(order, 12, half).Count(x => x), "8-bit keeps more sub-groups in RAM than fp32 bytes would.");
        Assert.True(split.NvmeWritten < allNvme.NvmeWritten, $"NVMe writes: mixed {split.NvmeWritten}, all NVMe {allNvme.NvmeWritten}.");
        Assert.True(split.NvmeWritten > Bytes.Zero);
        Assert.Equal(allNvme.Losses, split.Losses);
        Assert.Equal(allRam.Losses, split.Losses);
        for (int u = 0; u < split.Master.Length; u++)
        {
            Assert.Equal(allNvme.Master[u], split.Master[u]);
            Assert.Equal(allRam.Master[u], split.Master[u]);
        }
    }
}

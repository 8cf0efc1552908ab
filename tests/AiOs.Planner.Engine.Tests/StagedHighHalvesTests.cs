using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Storage;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// Split master weights' high halves copied from the staging slot the unit's last parameter read of the step filled
/// (<see cref="ProgramShape.StagedHighHalves"/>, issue 15): training is bit for bit what reading them from the drive gives, and
/// a step reads 2 bytes per parameter of the served units fewer from NVMe (and as many more from RAM), as the plan says.
/// </summary>
public sealed class StagedHighHalvesTests : IDisposable
{
    // Four layers and two staging slots: under the DeepSpeed schedule layers 0 and 1 (read last) and the outer block are still
    // staged when the update reads them, layers 2 and 3 are not; under the overlapped schedule every unit is.
    private static readonly ModelSpec Spec = ModelCatalog.Default.Load("tiny-gpt") with { NumLayers = 4 };
    private readonly string _root = Directory.CreateTempSubdirectory("aios-staged-high-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private TrainingSettings Settings(StepSchedule schedule) => LayerwiseTrainerTests.Small(Precision.Bf16) with
    {
        ParamOffload = OffloadTier.Nvme,
        OptimizerOffload = OffloadTier.Nvme,
        GradientOffload = OffloadTier.Cpu,
        NvmePath = Path.Combine(_root, "nvme"),
        OptimizerState = OptimizerStateFormat.EightBit,
        MasterWeights = MasterWeights.Split,
        Schedule = schedule,
    };

    private static LayerwiseTrainer Trainer(TrainingSettings settings, bool staged) =>
        new(Spec, settings, LayerwiseTrainerTests.Options() with { RunId = $"staged-{staged}-{Guid.NewGuid():N}", StagedHighHalves = staged },
            swapStore: dir => new FileSwapStore(dir, checksums: true));

    private static double[] Train(LayerwiseTrainer trainer, int from, int to, TrainingSettings settings)
    {
        var data = TokenDataset.Load(BundledText.DefaultPath);
        var losses = new List<double>();
        for (int s = from; s < to; s++)
            losses.Add(trainer.Step(m => data.Sample(42, s, m, settings.MicroBatch, settings.SeqLen)).Loss);
        return losses.ToArray();
    }

    /// <summary>Parameters whose high halves the program copies from staging slots in one step.</summary>
    private static long Served(StepProgram program) =>
        program.Ops.Where(o => o.Kind == OpKind.OptimizerRead && o.HighHalvesSlot >= 0).Sum(o => o.SubGroup!.Value.Elements);

    [Theory]
    [InlineData(StepSchedule.DeepSpeed)]
    [InlineData(StepSchedule.Overlapped)]
    public void Given_split_masters_on_nvme_When_three_steps_train_with_staged_high_halves_Then_losses_and_final_masters_are_the_drive_reads_bit_for_bit(StepSchedule schedule)
    {
        var settings = Settings(schedule);
        double[] fromDrive, fromStaging;
        float[][] driveMasters, stagedMasters;
        using (var t = Trainer(settings, staged: false))
        {
            Assert.Equal(0, Served(t.Program));
            fromDrive = Train(t, 0, 3, settings);
            driveMasters = Enumerable.Range(0, Spec.NumLayers + 1).Select(t.MasterOf).ToArray();
        }
        using (var t = Trainer(settings, staged: true))
        {
            Assert.True(Served(t.Program) > 0, "the program copies no high halves from staging: the test would compare drive reads with themselves");
            fromStaging = Train(t, 0, 3, settings);
            stagedMasters = Enumerable.Range(0, Spec.NumLayers + 1).Select(t.MasterOf).ToArray();
        }
        Assert.Equal(fromDrive, fromStaging);
        for (int u = 0; u <= Spec.NumLayers; u++) Assert.Equal(driveMasters[u], stagedMasters[u]);
        Assert.True(fromStaging[^1] < fromStaging[0], $"did not learn: {fromStaging[0]} → {fromStaging[^1]}");
    }

    [Theory]
    [InlineData(StepSchedule.DeepSpeed, 2)]
    [InlineData(StepSchedule.Overlapped, 4)]
    public void Given_split_masters_on_nvme_When_a_step_takes_high_halves_from_staging_Then_nvme_reads_drop_by_2_bytes_per_served_parameter_as_planned(StepSchedule schedule, int servedLayers)
    {
        var settings = Settings(schedule);
        (Planner.Engine.Metrics.IoTotals Io, long Planned, StepProgram Program) Measure(bool staged)
        {
            using var t = Trainer(settings, staged);
            Train(t, 0, 1, settings);
            var before = t.Io.Snapshot();
            Train(t, 1, 2, settings);
            return (t.Io.Snapshot().Minus(before), t.Program.Ops.Where(o => o.Resource == ResourceKind.Nvme && !o.IsWrite).Sum(o => o.Bytes.Value), t.Program);
        }

        var drive = Measure(staged: false);
        var staged = Measure(staged: true);
        // The units served: the outer block and the layers read last before their update (every one when it follows each backward).
        long layer = Spec.LayerParameters;
        long outer = Spec.TotalParameters - Spec.NumLayers * layer;
        long served = Served(staged.Program);
        Assert.Equal(outer + servedLayers * layer, served);
        Assert.Equal(drive.Io.NvmeRead.Value - 2 * served, staged.Io.NvmeRead.Value);
        Assert.Equal(drive.Io.CpuRead.Value + 2 * served, staged.Io.CpuRead.Value);
        Assert.Equal(drive.Io.NvmeWritten, staged.Io.NvmeWritten);
        Assert.Equal(drive.Planned - 2 * served, staged.Planned);
    }
}

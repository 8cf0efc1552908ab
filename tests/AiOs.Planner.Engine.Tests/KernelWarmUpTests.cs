using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Engine.Tests;

/// <summary>The warm-up before the first step changes nothing a step computes.</summary>
[Collection(nameof(TorchGlobalRandom))]
public sealed class KernelWarmUpTests : IDisposable
{
    private const int Steps = 3;
    private readonly string _nvme = Directory.CreateTempSubdirectory("aios-warmup-").FullName;

    public void Dispose() => Directory.Delete(_nvme, recursive: true);

    public static TheoryData<OffloadTier, OffloadTier, StepSchedule, Precision> Placements() => new()
    {
        { OffloadTier.None, OffloadTier.None, StepSchedule.DeepSpeed, Precision.Fp32 },
        { OffloadTier.None, OffloadTier.None, StepSchedule.DeepSpeed, Precision.Bf16 },
        { OffloadTier.None, OffloadTier.Cpu, StepSchedule.Overlapped, Precision.Fp32 },
        { OffloadTier.Cpu, OffloadTier.Cpu, StepSchedule.DeepSpeed, Precision.Bf16 },
        { OffloadTier.Cpu, OffloadTier.Cpu, StepSchedule.Delayed, Precision.Fp32 },
        { OffloadTier.Nvme, OffloadTier.Nvme, StepSchedule.DeepSpeed, Precision.Fp32 },
    };

    [Theory]
    [MemberData(nameof(Placements))]
    public void Given_AWarmUp_When_TrainedAfterIt_Then_LossesAndWeightsEqualARunWithout(OffloadTier parameters, OffloadTier optimizer, StepSchedule schedule, Precision precision)
    {
        // Dropout on: the warm-up draws masks too, which the steps must not see.
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt") with { Dropout = 0.1 };
        TrainingSettings settings = LayerwiseTrainerTests.Small(precision) with
        {
            ParamOffload = parameters,
            OptimizerOffload = optimizer,
            Schedule = schedule,
            NvmePath = _nvme,
            GradAccumulation = schedule == StepSchedule.Delayed ? 1 : 2,
        };
        EngineOptions options = LayerwiseTrainerTests.Options();

        var (coldLosses, coldMaster) = Train(spec, settings, options with { RunId = "cold" }, warmUp: false);
        var (warmLosses, warmMaster) = Train(spec, settings, options with { RunId = "warm" }, warmUp: true);

        Assert.Equal(coldLosses, warmLosses);
        for (int u = 0; u < coldMaster.Length; u++) Assert.Equal(coldMaster[u], warmMaster[u]);
    }

    private static (double[] Losses, float[][] Master) Train(ModelSpec spec, TrainingSettings settings, EngineOptions options, bool warmUp)
    {
        var data = TokenDataset.Load(BundledText.DefaultPath);
        using ITrainer trainer = Trainers.Create(spec, settings, options);
        if (warmUp) Assert.True(trainer.WarmUp(data.Sample(options.Seed, 0, 0, settings.MicroBatch, settings.SeqLen)) > 0);
        var losses = new double[Steps];
        for (int s = 0; s < Steps; s++)
        {
            int step = s;
            losses[s] = trainer.Step(m => data.Sample(options.Seed, step, m, settings.MicroBatch, settings.SeqLen)).Loss;
        }
        return (losses, Enumerable.Range(0, spec.NumLayers + 1).Select(trainer.MasterOf).ToArray());
    }
}

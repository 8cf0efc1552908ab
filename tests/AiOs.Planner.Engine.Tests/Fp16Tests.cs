using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Engine.Tests;

public sealed class Fp16Tests : IDisposable
{
    private const int Steps = 12;
    private readonly string _nvme = Directory.CreateTempSubdirectory("aios-fp16-").FullName;

    public void Dispose() => Directory.Delete(_nvme, recursive: true);

    private static List<StepResult> Run(ITrainer trainer, TrainingSettings settings, EngineOptions options, int steps = Steps)
    {
        var data = TokenDataset.Load(BundledText.DefaultPath);
        var results = new List<StepResult>();
        for (int s = 0; s < steps; s++)
        {
            int step = s;
            results.Add(trainer.Step(m => data.Sample(options.Seed, step, m, settings.MicroBatch, settings.SeqLen)));
        }
        return results;
    }

    private static List<StepResult> Reference(ModelSpec spec, TrainingSettings settings, EngineOptions options)
    {
        var data = TokenDataset.Load(BundledText.DefaultPath);
        using var r = new ReferenceTrainer(spec, settings, options);
        var results = new List<StepResult>();
        for (int s = 0; s < Steps; s++)
        {
            int step = s;
            results.Add(r.Step(m => data.Sample(options.Seed, step, m, settings.MicroBatch, settings.SeqLen)));
        }
        return results;
    }

    [Theory]
    [InlineData(OffloadTier.Nvme, OffloadTier.Cpu)]
    [InlineData(OffloadTier.Cpu, OffloadTier.Nvme)]
    [InlineData(OffloadTier.None, OffloadTier.None)]
    // The update writes the fp16 copy in its pass: into the host copies, and into device-resident units.
    [InlineData(OffloadTier.Cpu, OffloadTier.Cpu)]
    [InlineData(OffloadTier.None, OffloadTier.Cpu)]
    public void Given_Fp16WithLossScaling_When_Trained_Then_LossesFollowTheFp16Reference(OffloadTier parameters, OffloadTier optimizer, StepSchedule schedule = StepSchedule.DeepSpeed)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings settings = LayerwiseTrainerTests.Small(Precision.Fp16) with { ParamOffload = parameters, OptimizerOffload = optimizer, NvmePath = _nvme, Schedule = schedule };
        EngineOptions options = LayerwiseTrainerTests.Options(new GradientClipping(1.0, ClipMode.GlobalNorm));

        using ITrainer trainer = Trainers.Create(spec, settings, options);
        var runs = Run(trainer, settings, options);
        var reference = Reference(spec, settings, options);

        for (int s = 0; s < Steps; s++) Assert.Equal(reference[s].Loss, runs[s].Loss, 1e-3);
        Assert.All(runs, r => Assert.Equal(65536, r.LossScale));
        Assert.True(runs[^1].Loss < runs[0].Loss - 0.5, $"fp16 did not learn: {runs[0].Loss} → {runs[^1].Loss}.");
    }

    [Theory]
    [InlineData(OffloadTier.Cpu, StepSchedule.DeepSpeed)]
    [InlineData(OffloadTier.Cpu, StepSchedule.Delayed)]
    public void Given_fp16_with_8bit_moments_When_trained_Then_the_copies_written_after_the_8bit_update_equal_the_serial_cast_from_the_master(OffloadTier parameters, StepSchedule schedule)
    {
        // The 8-bit update writes bf16 copies only: for fp16 it is given no target and the master takes the write-back (ToFp16),
        // as parameters on NVMe always do. Were it given the fp16 target, bf16 bits would land in fp16 weights.
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings settings = LayerwiseTrainerTests.Small(Precision.Fp16) with
        {
            ParamOffload = parameters, OptimizerOffload = OffloadTier.Cpu, NvmePath = _nvme, Schedule = schedule,
            OptimizerState = AiOs.Planner.Optim.OptimizerStateFormat.EightBit, GradAccumulation = 1,
        };
        EngineOptions options = LayerwiseTrainerTests.Options(new GradientClipping(1.0, ClipMode.GlobalNorm));

        List<StepResult> inRam, onNvme;
        using (ITrainer trainer = Trainers.Create(spec, settings, options)) inRam = Run(trainer, settings, options);
        using (ITrainer trainer = Trainers.Create(spec, settings with { ParamOffload = OffloadTier.Nvme }, options)) onNvme = Run(trainer, settings, options);

        Assert.Equal(onNvme.Select(r => r.Loss), inRam.Select(r => r.Loss));
        Assert.True(inRam[^1].Loss < inRam[0].Loss - 0.5, $"fp16 with 8-bit moments did not learn: {inRam[0].Loss} → {inRam[^1].Loss}.");
    }

    [Theory]
    [InlineData(OffloadTier.Cpu)]
    [InlineData(OffloadTier.None)]
    public void Given_ALossScaleThatOverflows_When_Trained_Then_StepsAreSkippedAndTheScaleHalvesUntilTrainingProceeds(OffloadTier placement)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings settings = LayerwiseTrainerTests.Small(Precision.Fp16) with { ParamOffload = placement, OptimizerOffload = placement, GradAccumulation = 1 };
        EngineOptions options = LayerwiseTrainerTests.Options() with { InitialLossScale = Math.Pow(2, 30) };

        using ITrainer trainer = Trainers.Create(spec, settings, options);
        var runs = Run(trainer, settings, options, steps: 30);

        int skipped = runs.Count(r => r.Skipped);
        Assert.InRange(skipped, 3, 25);
        Assert.True(runs[0].Skipped);
        // Hysteresis 2 (DeepSpeed's default): the first overflow only skips; every later one halves (no clean window in between).
        Assert.Equal(Math.Pow(2, 30 - (skipped - 1)), runs[^1].LossScale!.Value);
        Assert.False(runs[^1].Skipped);
        Assert.True(runs[^1].Loss < runs[0].Loss, $"Training did not proceed after the overflows: {runs[0].Loss} → {runs[^1].Loss}.");
    }

    [Theory]
    [InlineData(OffloadTier.Cpu)]
    [InlineData(OffloadTier.None)]
    public void Given_ACheckpointAfterSkippedSteps_When_Resumed_Then_LossesAndScalesContinueAsWithoutTheBreak(OffloadTier placement)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings settings = LayerwiseTrainerTests.Small(Precision.Fp16) with { ParamOffload = placement, OptimizerOffload = placement, GradAccumulation = 1 };
        EngineOptions options = LayerwiseTrainerTests.Options() with { InitialLossScale = Math.Pow(2, 26) };
        var data = TokenDataset.Load(BundledText.DefaultPath);
        TokenBatch Batch(int step, int micro) => data.Sample(options.Seed, step, micro, settings.MicroBatch, settings.SeqLen);
        string root = Directory.CreateTempSubdirectory("aios-fp16-ckpt-").FullName;
        try
        {
            var straight = new List<StepResult>();
            using (ITrainer t = Trainers.Create(spec, settings, options))
            {
                for (int s = 0; s < 16; s++)
                {
                    straight.Add(t.Step(m => Batch(s, m)));
                    if (s == 7) t.SaveCheckpoint(root);
                }
            }
            Assert.Contains(straight.Take(8), r => r.Skipped);

            using ITrainer resumed = Trainers.Create(spec, settings, options);
            resumed.RestoreCheckpoint(Checkpoints.Checkpoint.Latest(root)!);
            for (int s = 8; s < 16; s++)
            {
                StepResult r = resumed.Step(m => Batch(s, m));
                Assert.Equal(straight[s].LossScale, r.LossScale);
                Assert.Equal(straight[s].Loss, r.Loss, 1e-6);
            }
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void Given_ALossScaler_When_StepsOverflowOrRunClean_Then_ItHalvesSkipsAndDoublesAfterTheWindow()
    {
        var scaler = new LossScaler(initial: 1024, window: 3, minScale: 256, hysteresis: 1);

        Assert.False(scaler.Update(overflow: true));
        Assert.Equal(512, scaler.Scale);
        Assert.False(scaler.Update(overflow: true));
        Assert.False(scaler.Update(overflow: true));
        Assert.Equal(256, scaler.Scale);
        Assert.True(scaler.Update(false));
        Assert.True(scaler.Update(false));
        Assert.Equal(256, scaler.Scale);
        Assert.True(scaler.Update(false));
        Assert.Equal(512, scaler.Scale);
        Assert.Equal(3, scaler.Skipped);
        Assert.True(LossScaler.Overflowed(double.PositiveInfinity));
        Assert.True(LossScaler.Overflowed(double.NaN));
        Assert.False(LossScaler.Overflowed(1e30));
    }

    [Fact]
    public void Given_hysteresis_two_When_overflows_come_Then_the_first_after_an_increase_only_skips_as_in_DeepSpeed()
    {
        var scaler = new LossScaler(initial: 1024, window: 2, hysteresis: 2);

        Assert.False(scaler.Update(overflow: true));
        Assert.Equal(1024, scaler.Scale); // hysteresis 2 → 1: skipped, scale kept
        Assert.True(scaler.Update(false));
        Assert.False(scaler.Update(overflow: true));
        Assert.Equal(512, scaler.Scale); // a clean step does not restore it (not consecutive): this one halves
        Assert.True(scaler.Update(false));
        Assert.True(scaler.Update(false));
        Assert.Equal(1024, scaler.Scale); // the window doubles the scale and restores the hysteresis
        Assert.False(scaler.Update(overflow: true));
        Assert.Equal(1024, scaler.Scale);
        Assert.Equal(3, scaler.Skipped);
    }

    [Fact]
    public void Given_consecutive_hysteresis_When_a_clean_step_separates_overflows_Then_neither_lowers_the_scale()
    {
        var scaler = new LossScaler(initial: 1024, window: 100, hysteresis: 2, consecutiveHysteresis: true);

        scaler.Update(overflow: true);
        scaler.Update(false);
        scaler.Update(overflow: true);
        Assert.Equal(1024, scaler.Scale);
        scaler.Update(overflow: true);
        Assert.Equal(512, scaler.Scale);
    }

    [Fact]
    public void Given_a_scaler_mid_hysteresis_When_its_state_is_restored_Then_the_next_overflow_halves_as_it_would_have()
    {
        var a = new LossScaler(initial: 1024, window: 100, hysteresis: 2);
        a.Update(overflow: true);
        var b = new LossScaler(initial: 1, window: 100, hysteresis: 2);
        b.Restore(a.State);
        var old = new LossScaler(initial: 1, window: 100, hysteresis: 2);
        old.Restore(new LossScaleState(1024, 0, 1));

        b.Update(overflow: true);
        old.Update(overflow: true);

        Assert.Equal(512, b.Scale);
        Assert.Equal(1024, old.Scale); // a checkpoint without the field restores the full hysteresis
    }
}

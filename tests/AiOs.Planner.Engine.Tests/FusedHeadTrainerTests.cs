using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// Both trainers at shapes where the engine fuses the head and loss (<see cref="EngineHeadLoss.FusingSavesBytes"/>): the first
/// step's loss is the unfused head's on the initial weights, and every step follows the reference trainer.
/// </summary>
public sealed class FusedHeadTrainerTests
{
    private const int Steps = 4;

    public FusedHeadTrainerTests() => TorchRuntime.EnsureReady();

    // 4 × 64 = 256 tokens a micro-batch: tiny-gpt's fused head keeps fewer bytes than its logits there.
    private static TrainingSettings Fused(bool resident) => LayerwiseTrainerTests.Small() with
    {
        MicroBatch = 4, SeqLen = 64,
        ParamOffload = resident ? OffloadTier.None : OffloadTier.Cpu,
        OptimizerOffload = resident ? OffloadTier.None : OffloadTier.Cpu,
    };

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Given_ShapesThatFuseTheHead_When_Trained_Then_TheFirstLossIsTheUnfusedHeadsAndEveryStepFollowsTheReference(bool resident)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings settings = Fused(resident);
        EngineOptions options = LayerwiseTrainerTests.Options();
        var data = TokenDataset.Load(BundledText.DefaultPath);
        TokenBatch Batch(int step, int micro) => data.Sample(options.Seed, step, micro, settings.MicroBatch, settings.SeqLen);
        Assert.True(EngineHeadLoss.FusingSavesBytes((long)settings.MicroBatch * settings.SeqLen, spec.VocabSize, spec.HiddenSize, settings.Precision));

        using ITrainer trainer = resident ? new DeviceTrainer(spec, settings, options) : new LayerwiseTrainer(spec, settings, options);
        double[] losses = Enumerable.Range(0, Steps).Select(s => trainer.Step(m => Batch(s, m)).Loss).ToArray();
        using var reference = new ReferenceTrainer(spec, settings, options);
        double[] expected = Enumerable.Range(0, Steps).Select(s => reference.Step(m => Batch(s, m)).Loss).ToArray();

        Assert.Equal(UnfusedLoss(spec, settings, options, m => Batch(0, m)), losses[0], 1e-5);
        for (int s = 0; s < Steps; s++) Assert.Equal(expected[s], losses[s], 2e-5);
        Assert.True(losses[^1] < losses[0], $"No learning: {losses[0]} → {losses[^1]}.");
    }

    /// <summary>The first step's loss through the unfused head, on the seeded initial weights.</summary>
    private static double UnfusedLoss(ModelSpec spec, TrainingSettings settings, EngineOptions options, Func<int, TokenBatch> batchOf)
    {
        using var model = new GptModel(spec, ScalarType.Float32, CPU);
        float[][] w = InitialWeights.Create(spec, options.Seed);
        for (int u = 0; u < model.UnitCount; u++)
        {
            using var t = tensor(w[u]);
            model.Unit(u).CopyFrom(t);
        }
        using var _ = no_grad();
        double loss = 0;
        for (int micro = 0; micro < settings.GradAccumulation; micro++)
        {
            using TokenBatch batch = batchOf(micro);
            using var scope = NewDisposeScope();
            loss += model.Outer.UnchunkedLoss(model.Hidden(batch.Inputs, null), batch.Targets, settings.GradAccumulation).item<float>();
        }
        return loss;
    }
}

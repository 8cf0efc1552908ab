using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// During backward the trainers free each layer's (recomputed) output, the gradient it was given and the leaf that held that
/// gradient as soon as the layer's input gradient exists: the micro-batch's dispose scope holds no more tensors after each
/// layer's backward than after the one before, where it used to gain two or three per layer until the embedding's backward closed it.
/// </summary>
[Collection(nameof(TorchGlobalRandom))]
public sealed class BackwardReleaseTests
{
    private const int Layers = 4;

    /// <summary>tiny-gpt with more layers, so growth per layer shows over several.</summary>
    private static ModelSpec Spec() => ModelCatalog.Default.Load("tiny-gpt") with { NumLayers = Layers };

    /// <summary>Trains two steps with <paramref name="attach"/>'s probe; returns, per micro-batch, the scope's tensor counts after each layer's backward (last layer first).</summary>
    private static List<int[]> CountsPerMicroBatch(TrainingSettings settings, Func<ModelSpec, EngineOptions, (ITrainer Trainer, Action<Action<int, int>> Attach)> make)
    {
        var data = TokenDataset.Load(BundledText.DefaultPath);
        EngineOptions options = LayerwiseTrainerTests.Options();
        var (trainer, attach) = make(Spec(), options);
        var seen = new List<(int Layer, int Count)>();
        attach((layer, count) => seen.Add((layer, count)));
        using (trainer)
            for (int s = 0; s < 2; s++) trainer.Step(m => data.Sample(options.Seed, s, m, settings.MicroBatch, settings.SeqLen));
        Assert.Equal(2 * settings.GradAccumulation * Layers, seen.Count);
        return seen.Chunk(Layers).Select(c =>
        {
            Assert.Equal(Enumerable.Range(0, Layers).Reverse(), c.Select(x => x.Layer));
            return c.Select(x => x.Count).ToArray();
        }).ToList();
    }

    private static void AssertNoGrowth(List<int[]> counts)
    {
        // Equal or fewer (the resident trainer also lets go of the handle of each layer's input it no longer needs), never more.
        foreach (int[] micro in counts)
            Assert.True(micro.Zip(micro.Skip(1)).All(p => p.Second <= p.First),
                $"The micro-batch's scope grew during backward: [{string.Join(", ", micro)}] tensors after layers {Layers - 1}..0.");
    }

    [Theory]
    [InlineData(Precision.Fp32, StepSchedule.DeepSpeed, false)]
    [InlineData(Precision.Fp32, StepSchedule.DeepSpeed, true)]
    [InlineData(Precision.Fp32, StepSchedule.Overlapped, true)]
    [InlineData(Precision.Fp16, StepSchedule.DeepSpeed, false)]
    [InlineData(Precision.Bf16, StepSchedule.Delayed, false)]
    public void Given_the_streaming_trainer_When_each_layer_backward_ends_Then_no_earlier_layer_tensor_stays_in_the_micro_batch(Precision precision, StepSchedule schedule, bool checkpointsInRam)
    {
        TrainingSettings settings = LayerwiseTrainerTests.Small(precision) with
        {
            ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, Schedule = schedule,
            GradientOffload = schedule == StepSchedule.Delayed ? OffloadTier.Cpu : null,
            ActivationOffload = checkpointsInRam ? OffloadTier.Cpu : OffloadTier.None,
        };

        var counts = CountsPerMicroBatch(settings, (spec, options) =>
        {
            var t = new LayerwiseTrainer(spec, settings, options);
            return (t, probe => t.LayerBackwardProbe = probe);
        });

        AssertNoGrowth(counts);
    }

    [Theory]
    [InlineData(Precision.Fp32, true)]
    [InlineData(Precision.Bf16, true)]
    [InlineData(Precision.Fp32, false)]
    public void Given_the_resident_trainer_When_each_layer_backward_ends_Then_no_earlier_layer_tensor_stays_in_the_micro_batch(Precision precision, bool checkpointing)
    {
        TrainingSettings settings = LayerwiseTrainerTests.Small(precision) with
        {
            ParamOffload = OffloadTier.None, OptimizerOffload = OffloadTier.None, ActivationCheckpointing = checkpointing,
        };

        var counts = CountsPerMicroBatch(settings, (spec, options) =>
        {
            var t = new DeviceTrainer(spec, settings, options);
            return (t, probe => t.LayerBackwardProbe = probe);
        });

        AssertNoGrowth(counts);
    }
}

using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Engine.Optim;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;
using AiOs.Planner.Settings;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Tests;

/// <summary>The learning-rate schedule reaches every AdamW implementation and the step records (issue 12 item 4).</summary>
public sealed class AdamWOptionsTests
{
    public AdamWOptionsTests() => TorchRuntime.EnsureReady();

    private static readonly LearningRateSchedule Cosine = new()
    {
        BaseLearningRate = 1e-2, MinLearningRate = 1e-3, WarmupSteps = 3, Decay = LearningRateDecay.Cosine, TotalSteps = 8,
    };

    private static float[] Random(SplitMix64 rng, int n, double scale) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextGaussian() * scale)).ToArray();

    /// <summary>Eight updates with <paramref name="make"/>(options) per update; state lives in the spans, so a fresh optimizer per update is the same optimizer.</summary>
    private static float[] EightUpdates(Func<AdamWOptions, int, IOptimizerStep> make, bool scheduled)
    {
        var rng = new SplitMix64(11);
        const int n = 300;
        float[] master = Random(rng, n, 1), m = new float[n], v = new float[n];
        var options = new AdamWOptions { LearningRate = Cosine.BaseLearningRate, WeightDecay = 0.1 };
        for (int t = 1; t <= 8; t++)
        {
            float[] g = Random(rng, n, 0.1);
            var these = scheduled ? options with { Schedule = Cosine } : options with { LearningRate = Cosine.LrAt(t) };
            make(these, t).Update(master, g, m, v, t, 1f);
        }
        return master;
    }

    public static TheoryData<string> Implementations() => new() { "span", "cpu-adam", "torch-ops" };

    private static IOptimizerStep Make(string which, AdamWOptions o) => which switch
    {
        "span" => new SpanAdamW(o),
        "cpu-adam" => new CpuAdamStep(o, threads: 1),
        _ => new TorchOpsStep(new TorchOpsAdamW(o)),
    };

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Given_ASchedule_When_AdamWUpdates_Then_EachUpdateRunsAtTheSchedulesRateForItsStep(string which)
    {
        float[] scheduled = EightUpdates((o, _) => Make(which, o), scheduled: true);
        float[] stepwise = EightUpdates((o, _) => Make(which, o), scheduled: false);
        var constant = new AdamWOptions { LearningRate = Cosine.BaseLearningRate, WeightDecay = 0.1 };
        float[] flat = EightUpdates((_, _) => Make(which, constant), scheduled: false);

        Assert.Equal(stepwise, scheduled);
        Assert.NotEqual(flat, scheduled);
    }

    [Fact]
    public void Given_AScheduledRun_When_TheReferenceTrainerSteps_Then_EachStepRecordsTheRateItsUpdateUsed()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings settings = LayerwiseTrainerTests.Small();
        EngineOptions options = LayerwiseTrainerTests.Options() with { Adam = new() { LearningRate = Cosine.BaseLearningRate, Schedule = Cosine } };
        var data = TokenDataset.Load(BundledText.DefaultPath);

        using var trainer = new ReferenceTrainer(spec, settings, options);
        for (int s = 0; s < 4; s++)
        {
            int step = s;
            StepResult r = trainer.Step(micro => data.Sample(options.Seed, step, micro, settings.MicroBatch, settings.SeqLen));
            Assert.Equal(Cosine.LrAt(r.Step), r.LearningRate);
        }
    }

    [Fact]
    public void Given_NoLearningRateGiven_When_TheEngineAndTheDeepSpeedConfigAreMade_Then_TheyUseTheSameRate()
    {
        Assert.Equal(new DeepSpeedOptimizer().Schedule.BaseLearningRate, new AdamWOptions().LearningRate);
        Assert.Equal(1e-4, new AdamWOptions().LearningRate);
    }

    /// <summary>TorchOpsAdamW on CPU tensors behind the span interface, so one test drives all three.</summary>
    private sealed class TorchOpsStep(TorchOpsAdamW adam) : IOptimizerStep
    {
        public void Update(Span<float> master, ReadOnlySpan<float> gradient, Span<float> expAvg, Span<float> expAvgSq, int step, float gradScale)
        {
            using var p = tensor(master.ToArray());
            using var g = tensor(gradient.ToArray());
            using var m = tensor(expAvg.ToArray());
            using var v = tensor(expAvgSq.ToArray());
            adam.Update(p, g, m, v, null, step, gradScale);
            p.data<float>().ToArray().CopyTo(master);
            m.data<float>().ToArray().CopyTo(expAvg);
            v.data<float>().ToArray().CopyTo(expAvgSq);
        }
    }
}

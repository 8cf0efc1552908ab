using System.Text.Json.Nodes;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;
using AiOs.Planner.Settings;
using Xunit;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The schedule the engine runs and the <c>scheduler</c> section the DeepSpeed config carries agree: DeepSpeed's own formulas
/// (deepspeed/runtime/lr_schedules.py, warmup_type "linear"), fed the emitted parameters, give <see cref="LearningRateSchedule.LrAt"/>.
/// </summary>
public sealed class LearningRateScheduleTests
{
    private static readonly ModelSpec Model = ModelCatalog.Default.Load("llama-2-7b");

    /// <summary>WarmupLR / WarmupDecayLR / WarmupCosineLR at <c>last_batch_iteration</c> = <paramref name="i"/>, as DeepSpeed writes them.</summary>
    private static double DeepSpeedLr(JsonObject config, int i)
    {
        double optimizerLr = config["optimizer"]!["params"]!["lr"]!.GetValue<double>();
        if (config["scheduler"] is not JsonObject scheduler) return optimizerLr;
        var p = scheduler["params"]!;
        Assert.Equal("linear", p["warmup_type"]!.GetValue<string>());
        int w = Math.Max(2, p["warmup_num_steps"]!.GetValue<int>());
        switch (scheduler["type"]!.GetValue<string>())
        {
            case "WarmupLR":
            case "WarmupDecayLR":
            {
                double min = p["warmup_min_lr"]!.GetValue<double>(), max = p["warmup_max_lr"]!.GetValue<double>();
                double gamma;
                if (i < w) gamma = (double)i / w;
                else if (scheduler["type"]!.GetValue<string>() == "WarmupLR") gamma = 1.0;
                else
                {
                    int total = p["total_num_steps"]!.GetValue<int>();
                    gamma = Math.Max(0.0, (double)(total - i) / Math.Max(1.0, total - w));
                }
                return min + (max - min) * gamma;
            }
            case "WarmupCosineLR":
            {
                int total = p["total_num_steps"]!.GetValue<int>();
                double wmr = p["warmup_min_ratio"]!.GetValue<double>(), cmr = p["cos_min_ratio"]!.GetValue<double>();
                double ratio;
                if (i < w) ratio = wmr + (double)i / w * (1 - wmr);
                else
                {
                    double realLast = i - w + 1, realTotal = total - w;
                    ratio = Math.Max(0.0, cmr + (1 - cmr) * (1 + Math.Cos(Math.PI * realLast / realTotal)) / 2);
                }
                return optimizerLr * ratio;
            }
            default:
                throw new InvalidOperationException("unknown scheduler");
        }
    }

    private static JsonObject Config(LearningRateSchedule schedule) =>
        DeepSpeedConfig.Build(Model, new TrainingSettings(), 1, 1, new DeepSpeedOptimizer { Schedule = schedule });

    public static TheoryData<LearningRateDecay, int, double> Schedules() => new()
    {
        { LearningRateDecay.Constant, 10, 0 },
        { LearningRateDecay.Constant, 1, 1e-5 },
        { LearningRateDecay.Linear, 10, 0 },
        { LearningRateDecay.Linear, 25, 2e-5 },
        { LearningRateDecay.Cosine, 10, 0 },
        { LearningRateDecay.Cosine, 0, 1e-5 },
        { LearningRateDecay.Cosine, 100, 3e-5 },
    };

    [Theory]
    [MemberData(nameof(Schedules))]
    public void Given_ASchedule_When_WrittenForDeepSpeed_Then_DeepSpeedsFormulasGiveTheEnginesRateAtEveryStep(LearningRateDecay decay, int warmup, double min)
    {
        var schedule = new LearningRateSchedule { BaseLearningRate = 3e-4, MinLearningRate = min, WarmupSteps = warmup, Decay = decay, TotalSteps = 100 };

        var config = Config(schedule);

        Assert.Equal(3e-4, config["optimizer"]!["params"]!["lr"]!.GetValue<double>());
        foreach (int step in new[] { 1, 2, 5, 9, 10, 11, 50, 99, 100 })
            Assert.Equal(DeepSpeedLr(config, step), schedule.LrAt(step), 12);
    }

    [Theory]
    [InlineData(LearningRateDecay.Linear)]
    [InlineData(LearningRateDecay.Cosine)]
    public void Given_ADecayingSchedule_When_AtTheLastStep_Then_TheRateIsTheMinimumAndNeverRisesAfterTheWarmUp(LearningRateDecay decay)
    {
        var schedule = new LearningRateSchedule { BaseLearningRate = 1e-4, MinLearningRate = 1e-6, WarmupSteps = 5, Decay = decay, TotalSteps = 40 };

        Assert.Equal(1e-6, schedule.LrAt(40), 15);
        for (int s = 6; s <= 40; s++) Assert.True(schedule.LrAt(s) <= schedule.LrAt(s - 1), $"step {s} rose");
        for (int s = 2; s <= 5; s++) Assert.True(schedule.LrAt(s) > schedule.LrAt(s - 1), $"warm-up step {s} did not rise");
    }

    [Fact]
    public void Given_AConstantRateWithoutWarmUp_When_WrittenForDeepSpeed_Then_ThereIsNoSchedulerAndEveryStepHasTheRate()
    {
        var schedule = LearningRateSchedule.Constant(2e-4);

        Assert.Null(Config(schedule)["scheduler"]);
        Assert.All(Enumerable.Range(1, 20), s => Assert.Equal(2e-4, schedule.LrAt(s)));
    }

    [Fact]
    public void Given_TheDefaults_When_WrittenForDeepSpeed_Then_TheRateIsTheOneTrainUses()
    {
        var config = DeepSpeedConfig.Build(Model, new TrainingSettings(), 1, 1);

        Assert.Equal(LearningRateSchedule.DefaultLearningRate, config["optimizer"]!["params"]!["lr"]!.GetValue<double>());
        Assert.Equal(1e-4, LearningRateSchedule.DefaultLearningRate);
    }

    [Theory]
    [InlineData(-1e-4, 0, 0, "--lr")]
    [InlineData(double.NaN, 0, 0, "--lr")]
    [InlineData(1e-4, 1e-3, 0, "--min-lr")]
    [InlineData(1e-4, -1, 0, "--min-lr")]
    [InlineData(1e-4, 0, -3, "--warmup-steps")]
    [InlineData(1e-4, 0, 200, "--warmup-steps")]
    public void Given_AValueThatCannotMakeASchedule_When_Checked_Then_TheProblemNamesTheFlag(double lr, double min, int warmup, string flag)
    {
        var schedule = new LearningRateSchedule { BaseLearningRate = lr, MinLearningRate = min, WarmupSteps = warmup, Decay = LearningRateDecay.Cosine, TotalSteps = 100 };

        Assert.Contains(schedule.Problems(), p => p.StartsWith(flag, StringComparison.Ordinal));
    }
}

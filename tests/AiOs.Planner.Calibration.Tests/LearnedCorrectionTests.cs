using AiOs.Planner.Calibration.Learning;
using AiOs.Planner.Hardware;
using AiOs.Planner.Learning;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Calibration.Tests;

public sealed class LearnedCorrectionTests
{
    private static readonly Lazy<StepCorrectionSpec> Learned = new(() => CorrectionLearner.Learn(SyntheticHistory.Create(seed: 7), new LearnOptions { Seed = 1 }));

    private static TrainingSettings Inside => new() { MicroBatch = 4, SeqLen = 64, Precision = Precision.Fp32 };

    [Fact]
    public void Correction_round_trips_through_the_profile_file()
    {
        // Given a profile with a learned correction
        var profile = SyntheticHistory.Profile with { Correction = Learned.Value };
        // When it is written and read back as a profile file
        var read = ProfileCatalog.Parse(ProfileWriter.ToJson(profile), "round-trip");
        // Then the section is intact and its models give the same ratios
        Assert.NotNull(read.Correction);
        Assert.Equal(Learned.Value.Forward, read.Correction.Forward);
        Assert.Equal(Learned.Value.Ranges, read.Correction.Ranges);
        var features = CorrectionFeatures.Of(SyntheticHistory.Model("tiny-gpt"), Inside, Simulation.Simulator.Predict(SyntheticHistory.Model("tiny-gpt"), profile, Inside).Phases);
        Assert.Equal(LearnedCorrection.Load(Learned.Value).Apply(features), LearnedCorrection.Load(read.Correction).Apply(features));
    }

    [Fact]
    public void Planner_scales_the_phases_by_the_learned_ratios_inside_the_history()
    {
        // Given a corrected profile and settings inside the history
        var profile = SyntheticHistory.Profile with { Correction = Learned.Value };
        var model = SyntheticHistory.Model("tiny-gpt");
        var plain = TrainingPlanner.Plan(model, SyntheticHistory.Profile, Inside);
        // When the planner applies the correction
        var plan = TrainingPlanner.Plan(model, profile, Inside, new PlanOptions { Correction = LearnedCorrection.For(profile) });
        // Then each phase is the uncorrected one times its ratio, and the ratios are near the law's
        var outcome = plan.Correction!;
        Assert.True(outcome.Applied, outcome.Reason);
        Assert.Equal(plain.Step!.Phases.Backward.Seconds * outcome.Ratios.Backward, plan.Step!.Phases.Backward.Seconds, 6);
        Assert.NotEqual(plain.Step.Time, plan.Step.Time);
        var truth = SyntheticHistory.TrueRatios(Inside);
        Assert.InRange(outcome.Ratios.Backward / truth.Backward, 0.8, 1.25);
        Assert.InRange(outcome.Ratios.Optimizer / truth.Optimizer, 0.8, 1.25);
        Assert.Contains("\"corrected\": true", DeepSpeed.DeepSpeedConfig.ToJson(PlanDocument.Build(plan)));
    }

    [Fact]
    public void Planner_falls_back_outside_the_history_and_says_why()
    {
        // Given a corrected profile and a model far larger than any in the history
        var profile = SyntheticHistory.Profile with { Correction = Learned.Value };
        var model = SyntheticHistory.Model("gpt2");
        var settings = new TrainingSettings { MicroBatch = 1, SeqLen = 1024, Precision = Precision.Fp32 };
        // When it is planned
        var plain = TrainingPlanner.Plan(model, SyntheticHistory.Profile, settings);
        var plan = TrainingPlanner.Plan(model, profile, settings, new PlanOptions { Correction = LearnedCorrection.For(profile) });
        // Then the step is the simulator's own, flagged as uncorrected with the reason
        Assert.False(plan.Correction!.Applied);
        Assert.Contains("outside the history", plan.Correction.Reason);
        Assert.Contains("seq_len", plan.Correction.Reason);
        Assert.Equal(plain.Step!.Time, plan.Step!.Time);
        Assert.Contains("\"corrected\": false", DeepSpeed.DeepSpeedConfig.ToJson(PlanDocument.Build(plan)));
    }

    [Fact]
    public void Planner_without_a_correction_engine_keeps_the_prediction_and_says_so()
    {
        var profile = SyntheticHistory.Profile with { Correction = Learned.Value };
        var plan = TrainingPlanner.Plan(SyntheticHistory.Model("tiny-gpt"), profile, Inside);
        Assert.False(plan.Correction!.Applied);
        Assert.Contains("does not load", plan.Correction.Reason);
        Assert.Null(TrainingPlanner.Plan(SyntheticHistory.Model("tiny-gpt"), SyntheticHistory.Profile, Inside).Correction);
    }

    [Theory]
    [InlineData(CorrectionTrainerKind.Sdca)]
    [InlineData(CorrectionTrainerKind.FastTree)]
    public void Cross_validation_on_a_history_with_a_bias_lowers_the_error(CorrectionTrainerKind trainer)
    {
        // Given a history whose measured times follow a law the simulator does not know
        var runs = SyntheticHistory.Create(seed: 3);
        // When each fold is predicted by a correction learned from the others
        var cv = CorrectionCrossValidation.Run(runs, folds: 5, new LearnOptions { Trainer = trainer, Seed = 2 });
        // Then every held-out run was predicted, and the step error drops to under a third of the simulator's
        Assert.Equal(runs.Count, cv.Runs.Count);
        var step = cv.Errors.Single(e => e.Quantity == "step");
        Assert.True(step.Uncorrected > 0.5, $"uncorrected {step.Uncorrected}");
        Assert.True(step.Corrected < step.Uncorrected / 3, $"corrected {step.Corrected} vs uncorrected {step.Uncorrected}");
    }

    [Fact]
    public void A_history_without_runs_is_a_clear_error()
    {
        var e = Assert.Throws<CalibrationException>(() => CorrectionLearner.Learn([]));
        Assert.Contains("aios train", e.Message);
    }
}

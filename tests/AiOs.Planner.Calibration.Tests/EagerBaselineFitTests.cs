using AiOs.Planner.Calibration.Compute;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Tests;

public class EagerBaselineFitTests
{
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x");

    /// <summary>Constants unlike the defaults in every fitted figure, standing for "PyTorch as it really is".</summary>
    private static readonly ComputeModel Truth = new()
    {
        MatmulHalfRateHidden = 320, ElementwiseTraffic = 6.5,
        LayerOverhead = SimDuration.FromMicroseconds(110), LayerLaunchFloor = SimDuration.FromMicroseconds(900),
    };

    /// <summary>Baselines an eager PyTorch that follows <see cref="Truth"/> exactly would measure, through the same predictor the fit uses.</summary>
    internal static IReadOnlyList<EagerSetting> Synthetic(IEnumerable<string> models, ComputeModel truth)
    {
        var rows = new List<EagerBaseline>();
        foreach (string model in models)
            foreach (int mb in new[] { 1, 8 })
                foreach (var precision in new[] { Precision.Bf16, Precision.Fp32 })
                    foreach (bool ckpt in new[] { false, true })
                        rows.Add(new EagerBaseline(model, mb, 1024, precision, ckpt, 1, $"synthetic {rows.Count + 1}"));
        var settings = EagerStepPredictor.Prepare(rows, H200, ModelCatalog.Default.Load);
        return settings.Select(s => s with { Baseline = s.Baseline with { MedianMs = EagerStepPredictor.PredictMs(s, H200, truth) } }).ToList();
    }

    [Fact]
    public void Given_steps_of_known_constants_When_fitted_on_gpt2_and_gpt2_xl_Then_the_middle_sizes_are_predicted_within_1_percent()
    {
        var rows = Synthetic(["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"], Truth);

        var result = EagerBaselineFit.Fit(rows, H200, new EagerSplit());

        Assert.Equal(16, result.Test.Count);
        Assert.All(result.Rows.Where(r => r.Role == EagerRole.Test), r =>
            Assert.True(Math.Abs(r.Error) <= 0.01, $"{r.Baseline.Model} mb {r.Baseline.MicroBatch} {r.Baseline.Precision} ckpt {r.Baseline.Checkpointing}: {r.Error:P2}"));
        // The defaults do not already explain these steps: the fit had something to recover.
        Assert.True(result.TestWithStart.MaxAbs > 0.05, $"defaults' max test error {result.TestWithStart.MaxAbs:P1}");
        Assert.True(result.TargetsMet);
        Assert.Equal(ComputeModel.Default.MemoryEfficiency, result.Fitted.MemoryEfficiency);
    }

    [Fact]
    public void Given_a_test_rows_measurement_changed_When_fitted_again_Then_the_constants_are_the_same()
    {
        var rows = Synthetic(["gpt2", "gpt2-medium"], Truth);
        var split = new EagerSplit { FitModels = ["gpt2"] };
        int test = rows.Select((r, i) => (r, i)).First(x => x.r.Baseline.Model == "gpt2-medium").i;
        var changed = rows.Select((r, i) => i == test ? r with { Baseline = r.Baseline with { MedianMs = r.Baseline.MedianMs * 3 } } : r).ToList();

        var before = EagerBaselineFit.Fit(rows, H200, split);
        var after = EagerBaselineFit.Fit(changed, H200, split);

        Assert.Equal(before.Fitted, after.Fitted);
        Assert.Equal(EagerRole.Test, after.Rows[test].Role);
        Assert.InRange(after.Rows[test].Error, -0.7, -0.6); // the tripled measurement shows as an error, not as a moved constant
    }

    [Fact]
    public void Given_a_fit_row_measurement_changed_When_fitted_again_Then_the_constants_move()
    {
        // The counterpart of the test above: the fit does read its own rows, so the sameness above is the split's doing.
        var rows = Synthetic(["gpt2", "gpt2-medium"], Truth);
        var split = new EagerSplit { FitModels = ["gpt2"] };
        var changed = rows.Select((r, i) => i == 0 ? r with { Baseline = r.Baseline with { MedianMs = r.Baseline.MedianMs * 3 } } : r).ToList();

        Assert.NotEqual(EagerBaselineFit.Fit(rows, H200, split).Fitted, EagerBaselineFit.Fit(changed, H200, split).Fitted);
    }

    [Fact]
    public void Given_every_row_in_the_fit_set_When_fitted_Then_it_refuses_naming_the_flag()
    {
        var rows = Synthetic(["gpt2"], Truth);

        var e = Assert.Throws<CalibrationException>(() => EagerBaselineFit.Fit(rows, H200, new EagerSplit { FitModels = ["gpt2"] }));

        Assert.Contains("--fit-models", e.Message);
        Assert.Contains("nothing would test", e.Message);
    }

    [Fact]
    public void Given_a_fit_model_no_row_has_When_fitted_Then_it_refuses_naming_it_and_the_files_models()
    {
        var rows = Synthetic(["gpt2", "gpt2-medium"], Truth);

        var e = Assert.Throws<CalibrationException>(() => EagerBaselineFit.Fit(rows, H200, new EagerSplit { FitModels = ["gpt2", "gpt2-XL"] }));

        Assert.Contains("gpt2-XL", e.Message);
        Assert.Contains("the file has gpt2, gpt2-medium", e.Message);
    }

    [Fact]
    public void Given_too_few_fit_rows_When_fitted_Then_it_refuses_naming_the_count()
    {
        var rows = Synthetic(["gpt2", "gpt2-medium"], Truth).Where(r => r.Baseline.Model != "gpt2" || r.Baseline.MicroBatch == 1 && !r.Baseline.Checkpointing).ToList();

        var e = Assert.Throws<CalibrationException>(() => EagerBaselineFit.Fit(rows, H200, new EagerSplit { FitModels = ["gpt2"] }));

        Assert.Contains("Only 2 of", e.Message);
    }

    [Fact]
    public void Given_every_third_row_When_split_Then_rows_0_3_6_are_fitted()
    {
        var split = new EagerSplit { FitEvery = 3 };

        Assert.Equal([EagerRole.Fit, EagerRole.Test, EagerRole.Test, EagerRole.Fit], Enumerable.Range(0, 4).Select(i => split.RoleOf("gpt2-xl", i)));
    }

    [Fact]
    public void Given_an_unknown_model_When_prepared_Then_the_error_names_the_line_and_the_model()
    {
        var row = new EagerBaseline("gpt5", 1, 1024, Precision.Bf16, false, 40, "b.jsonl line 7");

        var e = Assert.Throws<CalibrationException>(() => EagerStepPredictor.Prepare([row], H200, ModelCatalog.Default.Load));

        Assert.Contains("b.jsonl line 7", e.Message);
        Assert.Contains("\"gpt5\"", e.Message);
    }

    [Fact]
    public void Given_a_baseline_When_priced_Then_it_is_the_deepspeed_executors_plan_of_the_same_settings()
    {
        var row = new EagerBaseline("gpt2-medium", 4, 1024, Precision.Fp32, true, 100, "x");
        var model = ModelCatalog.Default.Load("gpt2-medium");
        var direct = Simulator.Predict(model, H200, new TrainingSettings
        {
            MicroBatch = 4, SeqLen = 1024, Precision = Precision.Fp32, ActivationCheckpointing = true, GpusPerNode = 1, Executor = ExecutorKind.DeepSpeed,
        }, computeModel: Truth);

        double predicted = EagerStepPredictor.PredictMs(EagerStepPredictor.Prepare([row], H200, ModelCatalog.Default.Load)[0], H200, Truth);

        Assert.Equal(direct.Time.Milliseconds, predicted);
        Assert.NotEqual(predicted, EagerStepPredictor.PredictMs(EagerStepPredictor.Prepare([row], H200, ModelCatalog.Default.Load)[0], H200, ComputeModel.Default));
    }
}

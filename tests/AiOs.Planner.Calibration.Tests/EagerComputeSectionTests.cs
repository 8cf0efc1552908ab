using AiOs.Planner.Calibration.Compute;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Tests;

/// <summary>fit-eager's fifth constant (the recompute's dispatch) and the profile section it writes.</summary>
public class EagerComputeSectionTests
{
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x");

    /// <summary>PyTorch as the H100 sweep showed it: a checkpointed recompute dispatches 2.5 floors.</summary>
    private static readonly ComputeModel Truth = new()
    {
        MatmulHalfRateHidden = 320, ElementwiseTraffic = 6.5,
        LayerOverhead = SimDuration.FromMicroseconds(110), LayerLaunchFloor = SimDuration.FromMicroseconds(900),
        RecomputeLaunchFloors = 2.5,
    };

    [Fact]
    public void Given_steps_whose_recompute_costs_2_5_floors_When_fitted_Then_the_fit_recovers_it_and_predicts_the_test_rows()
    {
        var rows = EagerBaselineFitTests.Synthetic(["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"], Truth);

        var result = EagerBaselineFit.Fit(rows, H200, new EagerSplit());

        Assert.InRange(result.Fitted.RecomputeLaunchFloors, 2.4, 2.6);
        Assert.All(result.Rows.Where(r => r.Role == EagerRole.Test), r =>
            Assert.True(Math.Abs(r.Error) <= 0.01, $"{r.Baseline.Model} mb {r.Baseline.MicroBatch} {r.Baseline.Precision} ckpt {r.Baseline.Checkpointing}: {r.Error:P2}"));
    }

    [Fact]
    public void Given_a_fit_When_written_as_a_profile_Then_it_loads_with_the_measured_section_and_plans_with_the_fitted_constants()
    {
        var rows = EagerBaselineFitTests.Synthetic(["gpt2", "gpt2-medium"], Truth);
        var result = EagerBaselineFit.Fit(rows, H200, new EagerSplit { FitModels = ["gpt2"] });
        string dir = Directory.CreateTempSubdirectory("aios-eager-profile-").FullName;
        try
        {
            string path = Path.Combine(dir, "h200-eager.json");
            var profile = EagerComputeSection.Apply(H200, EagerComputeSection.Of(result, "sweep.jsonl", "2026-12-05"));

            EagerComputeSection.WriteProfile(path, profile);
            var loaded = ProfileCatalog.LoadFile(path);

            var section = loaded.Gpu!.EagerCompute!;
            Assert.Equal(result.Fitted.RecomputeLaunchFloors, section.RecomputeLaunchFloors.Value, 3);
            Assert.Equal(result.Fitted.LayerLaunchFloor.Nanoseconds / 1e3, section.LayerLaunchFloorUs.Value, 2);
            var provenance = section.LayerLaunchFloorUs.Provenance!;
            Assert.Equal(FigureSource.Measured, provenance.Source);
            Assert.Equal("2026-12-05", provenance.Date);
            Assert.Contains("sweep.jsonl", provenance.Method);
            Assert.Contains("--fit-models gpt2", provenance.Method);
            Assert.Contains("test 8 rows", provenance.Method);
            // The rest of the profile is kept.
            Assert.Equal(ProfileWriter.ToJson(H200), ProfileWriter.ToJson(loaded with { Gpu = loaded.Gpu with { EagerCompute = null } }));
            // A deepspeed plan on the written profile is the fitted constants' prediction (to the section's rounding).
            var setting = rows[0];
            double planned = Simulator.Predict(setting.Model, loaded, setting.Settings).Time.Milliseconds;
            Assert.Equal(EagerStepPredictor.PredictMs(setting, H200, result.Fitted), planned, 2);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Given_a_profile_without_a_gpu_When_the_section_is_applied_Then_it_refuses_naming_the_flag()
    {
        var cpu = ProfileCatalog.Default.Load("ci-2core-24gb");
        var section = new EagerCompute { MatmulHalfRateHidden = 200, ElementwiseTraffic = 4.5, LayerOverheadUs = 170, LayerLaunchFloorUs = 1220 };

        var e = Assert.Throws<CalibrationException>(() => EagerComputeSection.Apply(cpu, section));

        Assert.Contains("--hardware", e.Message);
    }

    [Fact]
    public void Given_a_path_that_is_a_folder_When_the_profile_is_written_Then_it_throws_and_the_folder_is_untouched()
    {
        string dir = Directory.CreateTempSubdirectory("aios-eager-folder-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "keep.txt"), "x");

            Assert.ThrowsAny<Exception>(() => EagerComputeSection.WriteProfile(dir, H200));

            Assert.True(Directory.Exists(dir));
            Assert.Equal(["keep.txt"], Directory.GetFiles(dir).Select(Path.GetFileName));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

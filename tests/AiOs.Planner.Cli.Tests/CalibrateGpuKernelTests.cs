using AiOs.Planner.Cli.Commands;
using AiOs.Planner.Engine.Probes;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Cli.Tests;

/// <summary>calibrate-gpu's engine-kernel path (probe, fit, profile) run on the CPU device, where the GPU is not available.</summary>
public class CalibrateGpuKernelTests
{
    [Fact]
    public void Given_the_cpu_device_When_the_engine_kernels_are_calibrated_Then_the_gpu_profile_gets_valid_engine_kernels()
    {
        // The efficiency refers to the profile's matmul rate: a CPU-sized rate keeps the fitted fraction in its range.
        var h200 = ProfileCatalog.Default.Load("h200-1x");
        var profile = h200 with { Gpu = h200.Gpu! with { EngineKernels = null, MatmulTflops = new PerPrecision { Fp32 = 0.2 } } };
        var options = new EngineKernelProbeOptions
        {
            Family = ModelCatalog.Default.Load("tiny-gpt"),
            Device = "cpu",
            Precision = Precision.Fp32,
            HiddenSizes = [64, 128, 192],
            Shapes = [(1, 16), (2, 32), (4, 32)],
            FloorShape = (1, 4),
            FloorChain = 3,
            HeadShapes = [(1, 32)],
            OptimizerElements = 100_000,
            Repeats = 2,
        };

        var (updated, _) = CalibrateGpuCommand.EngineKernels(profile, options, "2026-12-04");

        var kernels = updated.Gpu!.EngineKernels;
        Assert.NotNull(kernels);
        Assert.True(kernels.LayerLaunchFloorUs.Value > 0);
        // The floors come from passes run back to back (FloorChain), each a positive time per pass.
        Assert.True(kernels.AutogradLaunchFloorUs!.Value > 0 && kernels.BackwardLaunchFloorUs!.Value > 0);
        Assert.True(kernels.OptimizerGbps!.Value > 0);
        Assert.Equal(FigureSource.Measured, kernels.BackwardRatio.Provenance!.Source);
        updated.Validated("calibrated");
    }
}

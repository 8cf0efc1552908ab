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

    [Fact]
    public void Given_floor_families_When_the_engine_kernels_are_calibrated_on_the_cpu_Then_the_profile_holds_the_main_kind_and_the_others_floors()
    {
        var h200 = ProfileCatalog.Default.Load("h200-1x");
        var profile = h200 with { Gpu = h200.Gpu! with { EngineKernels = null, MatmulTflops = new PerPrecision { Fp32 = 0.2 } } };
        var family = ModelCatalog.Default.Load("tiny-gpt");
        var options = new EngineKernelProbeOptions
        {
            Family = family,
            FloorFamilies = CalibrateGpuCommand.LoadFamilies(" tiny-gpt, tiny-llama ,"),
            Device = "cpu",
            Precision = Precision.Fp32,
            HiddenSizes = [64, 128, 192],
            Shapes = [(1, 16), (2, 32), (4, 32)],
            FloorShape = (1, 4),
            FloorChain = 2,
            HeadShapes = [(1, 32)],
            OptimizerElements = 100_000,
            Repeats = 2,
        };
        var lines = new List<string>();

        var (updated, _) = CalibrateGpuCommand.EngineKernels(profile, options, "2026-12-06", lines.Add);

        var kernels = updated.Validated("calibrated").Gpu!.EngineKernels!;
        string llama = EngineLayerKind.Of(ModelCatalog.Default.Load("tiny-llama"));
        Assert.Equal(EngineLayerKind.Of(family), kernels.FloorKind);
        var entry = Assert.Single(kernels.KindFloors!);
        Assert.Equal(llama, entry.Kind);
        Assert.True(entry.ForwardUs.Value > 0 && entry.AutogradUs.Value > 0 && entry.BackwardUs.Value > 0);
        Assert.Contains(lines, l => l.StartsWith("floors of tiny-llama (" + llama + ")", StringComparison.Ordinal));
        Assert.True(kernels.FloorsFor(ModelCatalog.Default.Load("tiny-llama")).Measured);
    }

    [Fact]
    public void Given_the_default_floor_families_When_loaded_Then_every_bundled_models_layer_kind_is_among_them_once()
    {
        var families = CalibrateGpuCommand.LoadFamilies(CalibrateGpuCommand.DefaultFloorFamilies);
        var kinds = families.Select(EngineLayerKind.Of).ToList();

        Assert.Equal(kinds.Count, kinds.Distinct().Count());
        foreach (string name in ModelCatalog.Default.Names())
            Assert.Contains(EngineLayerKind.Of(ModelCatalog.Default.Load(name)), kinds);
    }
}


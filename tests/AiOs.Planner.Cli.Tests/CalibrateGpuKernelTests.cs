using System.CommandLine;
using AiOs.Planner.Cli.Commands;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Engine.Probes;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using Spectre.Console.Testing;

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
        // The layer products timed alone over the default grid (the probe's widths and twice and four times the widest; its
        // token counts and half the smallest), both precisions, and the fit taken against them (fp32 here).
        var rates = kernels.LayerMatmul!;
        Assert.Equal([64, 128, 192, 384, 768], rates.Points.Select(p => p.Hidden).Distinct().Order());
        Assert.Equal([8L, 16, 64, 128], rates.Points.Select(p => p.Tokens).Distinct().Order());
        Assert.All(rates.Points, p => Assert.True(p.Bf16Tflops > 0 && p.Fp32Tflops > 0));
        Assert.Contains("layer_matmul", kernels.MatmulEfficiency.Provenance!.Method);
        // Written and read back as a profile file, the table survives.
        string path = Path.Combine(Path.GetTempPath(), $"aios-calibrated-{Guid.NewGuid():N}.json");
        try
        {
            DescriptionJson.WriteFileAtomic(path, updated.Validated("calibrated"));
            Assert.Equal(rates.Points, ProfileCatalog.Default.Load(path).Gpu!.EngineKernels!.LayerMatmul!.Points);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Given_floor_families_When_the_engine_kernels_are_calibrated_on_the_cpu_Then_the_profile_holds_the_main_kind_and_the_others_floors()
    {
        var (profile, small) = Small();
        // The main family listed again among the floor families, with stray spaces and commas: it is measured once.
        var options = small with { FloorFamilies = CalibrateGpuCommand.LoadFamilies(" tiny-gpt, tiny-llama ,") };
        var family = options.Family;
        var lines = new List<string>();

        int savedBeforeReplays = 0;
        var (updated, _) = CalibrateGpuCommand.EngineKernels(profile, options, "2026-12-06", lines.Add, beforeReplays: _ => savedBeforeReplays++);

        var kernels = updated.Validated("calibrated").Gpu!.EngineKernels!;
        // Replays from CUDA graphs are for a CUDA device: on the CPU none are timed, so nothing is saved ahead of them and no
        // graph_work is written.
        Assert.Equal(0, savedBeforeReplays);
        Assert.Null(kernels.GraphWork);
        Assert.DoesNotContain(lines, l => l.StartsWith("replayed", StringComparison.Ordinal));
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

    /// <summary>A CPU-sized probe of tiny-gpt's kind with tiny-llama's as a floor family.</summary>
    private static (HardwareProfile Profile, EngineKernelProbeOptions Options) Small()
    {
        var h200 = ProfileCatalog.Default.Load("h200-1x");
        var profile = h200 with { Gpu = h200.Gpu! with { EngineKernels = null, MatmulTflops = new PerPrecision { Fp32 = 0.2 } } };
        var options = new EngineKernelProbeOptions
        {
            Family = ModelCatalog.Default.Load("tiny-gpt"),
            FloorFamilies = CalibrateGpuCommand.LoadFamilies("tiny-llama"),
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
        return (profile, options);
    }

    private static InStepFloorOptions InStepCpu(EngineKernelProbeOptions options) => CalibrateGpuCommand.InStepOptions(options) with
    {
        Layers = 2, Vocab = 256, SeqLen = 16, WarmUpSteps = 1, MeasuredSteps = 2,
    };

    [Fact]
    public void Given_in_step_floors_When_the_engine_kernels_are_calibrated_on_the_cpu_Then_every_kinds_floors_are_the_in_step_medians()
    {
        var (profile, options) = Small();
        var lines = new List<string>();

        var (updated, _) = CalibrateGpuCommand.EngineKernels(profile, options, "2026-12-06", lines.Add, InStepCpu(options));

        var kernels = updated.Validated("calibrated").Gpu!.EngineKernels!;
        Assert.Contains("median in-step span of the engine's resident trainer, tiny-gpt widened to h=64, 2 layers, mb 1 × 16, 4 spans", kernels.AutogradLaunchFloorUs!.Provenance!.Method);
        Assert.Contains("median in-step span", kernels.LayerLaunchFloorUs.Provenance!.Method);
        Assert.Contains("median in-step span", kernels.BackwardLaunchFloorUs!.Provenance!.Method);
        var llama = Assert.Single(kernels.KindFloors!);
        Assert.Contains("tiny-llama widened to h=64", llama.AutogradUs.Provenance!.Method);
        Assert.True(llama.ForwardUs.Value > 0 && llama.AutogradUs.Value > 0 && llama.BackwardUs.Value > 0);
        // Printed beside the probe's.
        Assert.Contains(lines, l => l.StartsWith("floors of tiny-gpt (", StringComparison.Ordinal) && l.Contains("in step against the probe", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("floors of tiny-llama (", StringComparison.Ordinal) && l.Contains("in step against the probe", StringComparison.Ordinal));
    }

    [Fact]
    public void Given_an_in_step_run_that_fails_When_the_engine_kernels_are_calibrated_Then_the_probes_floors_are_kept_with_a_warning()
    {
        var (profile, options) = Small();
        var lines = new List<string>();

        var (updated, _) = CalibrateGpuCommand.EngineKernels(profile, options, "2026-12-06", lines.Add, InStepCpu(options) with { MeasuredSteps = 0 });

        var kernels = updated.Validated("calibrated").Gpu!.EngineKernels!;
        Assert.Contains("at a tiny shape", kernels.AutogradLaunchFloorUs!.Provenance!.Method);
        Assert.Contains("at a tiny shape", Assert.Single(kernels.KindFloors!).AutogradUs.Provenance!.Method);
        Assert.Equal(2, lines.Count(l => l.StartsWith("warning: the in-step floors of ", StringComparison.Ordinal)));
    }

    [Fact]
    public void Given_the_calibrate_gpu_command_When_its_options_are_listed_Then_in_step_floors_can_be_skipped()
    {
        var command = CalibrateGpuCommand.Create(new CliIo(new TestConsole(), new StringWriter(), new TestConsole()));

        var option = Assert.Single(command.Options, o => o.Name == "--no-in-step-floors");
        Assert.Contains("inside real steps", option.Description, StringComparison.Ordinal);
        Assert.Empty(command.Parse(["--out", "x.json", "--no-in-step-floors"]).Errors);
    }

    [Fact]
    public void Given_probe_options_When_the_in_step_run_is_set_up_Then_it_takes_their_device_precision_and_smallest_hidden_size()
    {
        var options = new EngineKernelProbeOptions { Family = ModelCatalog.Default.Load("gpt2"), Device = "cuda:1", Precision = Precision.Fp16, HiddenSizes = [1280, 768, 2048] };

        var inStep = CalibrateGpuCommand.InStepOptions(options);

        Assert.Equal(("cuda:1", Precision.Fp16, 768), (inStep.Device, inStep.Precision, inStep.Hidden));
    }
}

using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

public class CpuComputeCostTests
{
    private static readonly CpuLayerCompute Fitted = new()
    {
        MatmulEfficiency = 0.8,
        SavedBytesGbps = 5,
        LayerOverheadUs = 400,
        BackwardRatio = 1.5,
    };

    private static HardwareProfile CpuMachine(CpuLayerCompute? compute)
    {
        var p = ProfileCatalog.Default.Load("ci-2core-24gb");
        return p with { Cpu = p.Cpu with { MatmulGflops = 100, LayerCompute = compute } };
    }

    private static Operation Op(OpKind kind, double flops, double saved) => new()
    {
        Id = 0, Kind = kind, Resource = ResourceKind.Compute, Phase = StepPhase.Forward, Unit = UnitId.Layer(0), Deps = [],
        Flops = flops, ElementwiseBytes = saved,
    };

    [Fact]
    public void Given_a_cpu_with_fitted_layer_compute_When_a_forward_is_costed_Then_it_is_matmul_plus_saved_bytes_plus_overhead()
    {
        var costs = new StepCosts(CpuMachine(Fitted), new TrainingSettings(), 1, 1, Bytes.Zero);

        var forward = costs.Duration(Op(OpKind.Forward, 3e9, 50e6), hiddenSize: 400);

        // 3 GFLOP at 100 GFLOP/s × 0.8 = 37.5 ms; 50 MB at 5 GB/s = 10 ms; 0.4 ms.
        Assert.Equal(47.9, forward.Milliseconds, 1e-3);
    }

    [Fact]
    public void Given_a_cpu_with_fitted_layer_compute_When_a_backward_is_costed_Then_it_takes_the_backward_ratio_times_its_forward()
    {
        var costs = new StepCosts(CpuMachine(Fitted), new TrainingSettings(), 1, 1, Bytes.Zero);

        var forward = costs.Duration(Op(OpKind.Forward, 3e9, 50e6), 400);
        var backward = costs.Duration(Op(OpKind.Backward, 6e9, 100e6), 400);

        Assert.Equal(forward.Seconds * 1.5, backward.Seconds, 1e-8);
    }

    [Fact]
    public void Given_an_explicit_compute_model_When_costed_Then_the_cpu_fit_is_not_used()
    {
        var withFit = new StepCosts(CpuMachine(Fitted), new TrainingSettings(), 1, 1, Bytes.Zero, ComputeModel.Default);
        var withoutFit = new StepCosts(CpuMachine(null), new TrainingSettings(), 1, 1, Bytes.Zero, ComputeModel.Default);

        Assert.Equal(withoutFit.Duration(Op(OpKind.Forward, 3e9, 50e6), 400), withFit.Duration(Op(OpKind.Forward, 3e9, 50e6), 400));
    }

    [Fact]
    public void Given_a_gpu_machine_whose_cpu_has_a_fit_When_simulated_Then_the_step_is_unchanged()
    {
        var h200 = ProfileCatalog.Default.Load("h200-1x");
        var withCpuFit = h200 with { Cpu = h200.Cpu with { LayerCompute = Fitted, MatmulGflops = 100, MatmulGflopsBf16 = 300 } };
        var model = Models.ModelCatalog.Default.Load("gpt2");
        var settings = new TrainingSettings { MicroBatch = 8, SeqLen = 1024 };

        Assert.Equal(Simulator.PredictTime(model, h200, settings).Time, Simulator.PredictTime(model, withCpuFit, settings).Time);
    }

    [Fact]
    public void Given_bf16_training_on_a_cpu_with_a_bf16_rate_When_costed_Then_matmuls_use_that_rate()
    {
        var machine = CpuMachine(Fitted) with { Cpu = CpuMachine(Fitted).Cpu with { MatmulGflopsBf16 = 200 } };
        var fp32 = new StepCosts(machine, new TrainingSettings { Precision = Precision.Fp32 }, 1, 1, Bytes.Zero);
        var bf16 = new StepCosts(machine, new TrainingSettings { Precision = Precision.Bf16 }, 1, 1, Bytes.Zero);

        double fp32Matmul = fp32.Duration(Op(OpKind.Forward, 4e9, 0), 400).Seconds - 400e-6;
        double bf16Matmul = bf16.Duration(Op(OpKind.Forward, 4e9, 0), 400).Seconds - 400e-6;

        Assert.Equal(fp32Matmul / 2, bf16Matmul, 1e-6);
    }

    [Fact]
    public void Given_a_profile_with_layer_compute_When_written_and_read_Then_the_figures_round_trip()
    {
        var profile = CpuMachine(Fitted with { SavedBytesGbps = Figure.Measured(5, "2026-11-28", "fit") });

        var loaded = ProfileCatalog.Parse(System.Text.Json.JsonSerializer.Serialize(profile, DescriptionJson.Options), "test");

        Assert.Equal(profile.Cpu.LayerCompute, loaded.Cpu.LayerCompute);
        Assert.Contains("\"layer_compute\"", System.Text.Json.JsonSerializer.Serialize(profile, DescriptionJson.Options));
    }

    [Fact]
    public void Given_a_cpu_with_a_bf16_layer_fit_When_bf16_and_fp32_training_are_costed_Then_each_takes_its_own_precisions_fit_and_matmul_rate()
    {
        var bf16Fit = Fitted with { MatmulEfficiency = 0.5, SavedBytesGbps = 2, LayerOverheadUs = 1000 };
        var p = CpuMachine(Fitted);
        var machine = p with { Cpu = p.Cpu with { MatmulGflopsBf16 = 300, LayerComputeBf16 = bf16Fit } };

        var bf16 = new StepCosts(machine, new TrainingSettings { Precision = Precision.Bf16 }, 1, 1, Bytes.Zero).Duration(Op(OpKind.Forward, 3e9, 50e6), 400);
        var fp32 = new StepCosts(machine, new TrainingSettings { Precision = Precision.Fp32 }, 1, 1, Bytes.Zero).Duration(Op(OpKind.Forward, 3e9, 50e6), 400);

        // bf16: 3 GFLOP at 300 GFLOP/s × 0.5 = 20 ms; 50 MB at 2 GB/s = 25 ms; 1 ms. fp32: the fp32 fit's 47.9 ms.
        Assert.Equal(46.0, bf16.Milliseconds, 1e-3);
        Assert.Equal(47.9, fp32.Milliseconds, 1e-3);
    }

    [Fact]
    public void Given_a_cpu_without_a_bf16_layer_fit_When_bf16_training_is_costed_Then_the_fp32_fit_takes_it_at_the_bf16_matmul_rate()
    {
        var p = CpuMachine(Fitted);
        var machine = p with { Cpu = p.Cpu with { MatmulGflopsBf16 = 200 } };

        var bf16 = new StepCosts(machine, new TrainingSettings { Precision = Precision.Bf16 }, 1, 1, Bytes.Zero).Duration(Op(OpKind.Forward, 3e9, 50e6), 400);

        // 3 GFLOP at 200 GFLOP/s × 0.8 = 18.75 ms; 10 ms; 0.4 ms.
        Assert.Equal(29.15, bf16.Milliseconds, 1e-3);
    }

    [Fact]
    public void Given_a_profile_with_a_bf16_layer_fit_When_written_and_read_Then_it_round_trips_under_layer_compute_bf16_and_is_validated()
    {
        var p = CpuMachine(Fitted);
        var machine = p with { Cpu = p.Cpu with { LayerComputeBf16 = Fitted with { LayerOverheadUs = 900 } } };

        string json = System.Text.Json.JsonSerializer.Serialize(machine, DescriptionJson.Options);
        var read = ProfileCatalog.Parse(json, "test");

        Assert.Contains("\"layer_compute_bf16\"", json);
        Assert.Equal(900, read.Cpu.LayerComputeBf16!.LayerOverheadUs.Value);
        var bad = machine with { Cpu = machine.Cpu with { LayerComputeBf16 = Fitted with { BackwardRatio = 0 } } };
        var e = Assert.Throws<DescriptionException>(() => bad.Validated("test"));
        Assert.Contains("layer_compute_bf16.backward_ratio", e.Message);
    }
}

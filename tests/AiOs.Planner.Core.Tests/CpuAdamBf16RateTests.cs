using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The profile's <c>adam_bf16_params_per_s</c>: the engine's bf16 CPU update (bf16 gradients in, bf16 copy out) is priced
/// with it when the profile has it, with <c>adam_params_per_s</c> when not; fp32 training, swapped states, accumulated
/// fp32 gradients and DeepSpeed keep the fp32-gradient figure.
/// </summary>
public class CpuAdamBf16RateTests
{
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x-calibrated");
    private static readonly ModelSpec Tiny = ModelCatalog.Default.Load("tiny-gpt") with { NumLayers = 3 };
    /// <summary>A bf16 figure unlike the fp32 one, so a test sees which was used.</summary>
    private static readonly double Bf16Rate = H200.Cpu.AdamParamsPerS.Value * 0.7;
    private static readonly HardwareProfile WithBf16 = H200 with { Cpu = H200.Cpu with { AdamBf16ParamsPerS = new Figure(Bf16Rate) } };

    private static TrainingSettings Offloaded(Precision precision = Precision.Bf16, ExecutorKind executor = ExecutorKind.Aios, OffloadTier optimizer = OffloadTier.Cpu,
        int accumulation = 1, StepSchedule schedule = StepSchedule.DeepSpeed) => new()
    {
        ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.Cpu, OptimizerOffload = optimizer, Precision = precision, Executor = executor,
        MicroBatch = 1, SeqLen = 16, SubGroupSize = 1000, Schedule = schedule, GradAccumulation = accumulation,
    };

    /// <summary>Asserts that every CPU update of the program for <paramref name="s"/> on <paramref name="hw"/> takes its parameters at <paramref name="rate"/>.</summary>
    private static void AssertPricedAt(HardwareProfile hw, TrainingSettings s, double rate, string why = "")
    {
        var program = StepScheduler.Build(Tiny, hw, s, false, ProgramShape.Engine);
        var costs = Simulator.Costs(program, hw, s);
        var steps = program.Ops.Where(o => o.Kind == OpKind.OptimizerStep && o.Resource == ResourceKind.Cpu).ToList();
        Assert.NotEmpty(steps);
        foreach (Operation step in steps)
        {
            // The 8-bit update's fp16 copy is a pass of its own after it (Fp16UpdatePricingTests): priced beside the rate.
            double copy = StepCosts.EngineCopiesFp16Apart(s) ? HostPass.Of(hw.Cpu, 1).Time(step.Parameters, 6).Seconds : 0;
            SimDuration expected = SimDuration.FromSeconds(copy + step.Parameters / rate), actual = costs.Duration(step, Tiny.HiddenSize);
            Assert.True(expected == actual, $"{why}: {step.Parameters} parameters priced {actual}, expected {expected} at {rate:0.###e0}/s");
        }
    }

    [Theory]
    [InlineData(StepSchedule.DeepSpeed)]
    [InlineData(StepSchedule.Overlapped)]
    public void Given_a_bf16_figure_When_the_engine_updates_bf16_gradients_in_ram_Then_each_update_is_priced_at_it(StepSchedule schedule) =>
        AssertPricedAt(WithBf16, Offloaded(schedule: schedule), Bf16Rate);

    [Fact]
    public void Given_a_profile_without_the_bf16_figure_When_the_engine_updates_bf16_gradients_Then_the_fp32_figure_prices_it()
    {
        Assert.Null(H200.Cpu.AdamBf16ParamsPerS);
        AssertPricedAt(H200, Offloaded(), H200.Cpu.AdamParamsPerS.Value);
    }

    public static TheoryData<string, TrainingSettings> Fp32Paths => new()
    {
        { "deepspeed executor", Offloaded(executor: ExecutorKind.DeepSpeed) },
        { "fp32 training", Offloaded(precision: Precision.Fp32) },
        { "fp16 training, deepspeed executor", Offloaded(precision: Precision.Fp16, executor: ExecutorKind.DeepSpeed) },
        { "accumulation 2: fp32 gradient sums", Offloaded(accumulation: 2) },
        { "optimizer on NVMe: the slot's fp32 gradient", Offloaded(optimizer: OffloadTier.Nvme) },
    };

    [Theory]
    [MemberData(nameof(Fp32Paths))]
    public void Given_a_bf16_figure_When_the_update_reads_fp32_gradients_Then_the_fp32_figure_prices_it(string why, TrainingSettings s) =>
        AssertPricedAt(WithBf16, s, WithBf16.Cpu.AdamParamsPerS.Value, why);

    [Fact]
    public void Given_fp16_training_When_the_engine_updates_in_ram_Then_its_fp16_pass_prices_it_not_the_fp32_figure() =>
        AssertPricedAt(WithBf16, Offloaded(precision: Precision.Fp16), WithBf16.Cpu.AdamFp16Rate.Value, "fp16 training");

    [Fact]
    public void Given_8bit_state_and_a_bf16_figure_When_rated_Then_the_8bit_rate_wins()
    {
        Assert.Equal(WithBf16.Cpu.Adam8Rate.Value, WithBf16.Cpu.AdamRateFor(OptimizerStateFormat.EightBit, CpuUpdatePass.Bf16Gradients));
        Assert.Equal(Bf16Rate, WithBf16.Cpu.AdamRateFor(OptimizerStateFormat.Fp32, CpuUpdatePass.Bf16Gradients));
        Assert.Equal(WithBf16.Cpu.AdamParamsPerS.Value, WithBf16.Cpu.AdamRateFor(OptimizerStateFormat.Fp32, CpuUpdatePass.Fp32Gradients));
    }

    [Fact]
    public void Given_a_profile_with_the_bf16_figure_When_written_and_loaded_Then_the_figure_and_its_provenance_survive()
    {
        var measured = WithBf16 with { Cpu = WithBf16.Cpu with { AdamBf16ParamsPerS = Figure.Measured(4.04e9, "2026-12-05", "probe") } };
        string path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "bf16.json");
        DescriptionJson.WriteFileAtomic(path, measured);

        Assert.Contains("\"adam_bf16_params_per_s\"", File.ReadAllText(path));
        var copy = ProfileCatalog.LoadFile(path);
        Assert.Equal(4.04e9, copy.Cpu.AdamBf16ParamsPerS!.Value);
        Assert.Equal("probe", copy.Cpu.AdamBf16ParamsPerS.Provenance!.Method);
    }

    [Fact]
    public void Given_an_old_profile_without_the_bf16_figure_When_loaded_Then_it_is_absent_and_the_bf16_rate_falls_back_to_adam_params_per_s()
    {
        const string json = """
            {"name": "x", "cpu": {"cores": 4, "ram_gib": 16, "memory_bandwidth_gbps": 20, "adam_params_per_s": 1.5e9}}
            """;
        var profile = ProfileCatalog.Parse(json, "x.json");
        Assert.Null(profile.Cpu.AdamBf16ParamsPerS);
        Assert.Equal(1.5e9, profile.Cpu.AdamRateFor(OptimizerStateFormat.Fp32, CpuUpdatePass.Bf16Gradients));
    }

    [Fact]
    public void Given_a_json_bf16_figure_When_loaded_Then_the_bf16_rate_uses_it()
    {
        const string json = """
            {"name": "x", "cpu": {"cores": 4, "ram_gib": 16, "memory_bandwidth_gbps": 20, "adam_params_per_s": 1.5e9, "adam_bf16_params_per_s": 1.2e9}}
            """;
        var profile = ProfileCatalog.Parse(json, "x.json");
        Assert.Equal(1.2e9, profile.Cpu.AdamRateFor(OptimizerStateFormat.Fp32, CpuUpdatePass.Bf16Gradients));
        Assert.Equal(1.5e9, profile.Cpu.AdamRateFor(OptimizerStateFormat.Fp32, CpuUpdatePass.Fp32Gradients));
    }

    [Fact]
    public void Given_a_negative_bf16_figure_When_loaded_Then_the_error_names_the_field()
    {
        const string json = """
            {"name": "x", "cpu": {"cores": 4, "ram_gib": 16, "memory_bandwidth_gbps": 20, "adam_params_per_s": 1e9, "adam_bf16_params_per_s": -1}}
            """;
        var e = Assert.Throws<DescriptionException>(() => ProfileCatalog.Parse(json, "x.json"));
        Assert.Contains("adam_bf16_params_per_s", e.Message);
    }

    [Fact]
    public void Given_the_optimizer_on_nvme_with_a_ram_budget_When_priced_Then_sub_groups_kept_in_ram_take_the_bf16_figure_and_swapped_ones_the_fp32()
    {
        var s = Offloaded(optimizer: OffloadTier.Nvme) with
        {
            GradientOffload = OffloadTier.Cpu, NvmePath = "/nvme", OptimizerRamBudget = Bytes.OfElements(2000, 12),
        };
        var program = StepScheduler.Build(Tiny, WithBf16, s, false, ProgramShape.Engine);
        var costs = Simulator.Costs(program, WithBf16, s);
        var updates = program.Ops.Where(o => o.Kind == OpKind.OptimizerStep && o.Resource == ResourceKind.Cpu).ToList();

        Assert.Contains(updates, o => o.Slot < 0);
        Assert.Contains(updates, o => o.Slot >= 0);
        foreach (Operation u in updates)
        {
            double rate = u.Slot < 0 ? Bf16Rate : WithBf16.Cpu.AdamParamsPerS.Value;
            Assert.Equal(SimDuration.FromSeconds(u.Parameters / rate), costs.Duration(u, Tiny.HiddenSize));
        }
    }
}

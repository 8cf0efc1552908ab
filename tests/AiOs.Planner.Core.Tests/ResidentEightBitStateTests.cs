using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// <c>--optimizer-state 8bit</c> with nothing offloaded (issue 15, resident runs): the aios executor takes it (its device 8-bit
/// AdamW), DeepSpeed's is refused, and the plan's device memory loses the 6 bytes per parameter the moments no longer take.
/// </summary>
public class ResidentEightBitStateTests
{
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x-calibrated");
    private static readonly ModelSpec Gpt2 = ModelCatalog.Default.Load("gpt2");

    private static TrainingSettings Resident(OptimizerStateFormat format, Precision precision = Precision.Bf16, ExecutorKind executor = ExecutorKind.Aios) => new()
    {
        MicroBatch = 8, OptimizerState = format, Precision = precision, Executor = executor,
    };

    [Fact]
    public void Given_resident_8bit_state_with_the_aios_executor_When_validated_Then_nothing_is_refused()
    {
        var problems = SettingsValidator.Problems(Resident(OptimizerStateFormat.EightBit), Gpt2);

        Assert.DoesNotContain(problems, p => p.Flag == "--optimizer-state");
    }

    [Fact]
    public void Given_resident_8bit_state_with_the_deepspeed_executor_When_validated_Then_it_is_refused_naming_the_fix()
    {
        var problems = SettingsValidator.Problems(Resident(OptimizerStateFormat.EightBit, executor: ExecutorKind.DeepSpeed), Gpt2);

        var p = Assert.Single(problems, p => p.Flag == "--optimizer-state");
        Assert.Contains("--executor aios", p.Message);
        Assert.Contains("--optimizer-state fp32", p.Message);
        Assert.Equal("$.optimizer_state", p.Field);
    }

    [Fact]
    public void Given_offloaded_8bit_state_with_the_deepspeed_executor_When_validated_Then_it_is_still_accepted_for_ds_config_to_emit_fp32_with_its_note()
    {
        var s = Resident(OptimizerStateFormat.EightBit, executor: ExecutorKind.DeepSpeed) with { OptimizerOffload = OffloadTier.Cpu, ZeroStage = ZeroStage.Zero2 };

        Assert.DoesNotContain(SettingsValidator.Problems(s, Gpt2), p => p.Flag == "--optimizer-state");
    }

    [Theory]
    [InlineData(Precision.Bf16)]
    [InlineData(Precision.Fp32)]
    public void Given_a_resident_run_When_planned_with_8bit_state_Then_device_memory_drops_by_about_6_bytes_per_parameter(Precision precision)
    {
        var fp32 = EngineMemory.Plan(Gpt2, H200, Resident(OptimizerStateFormat.Fp32, precision));
        var q8 = EngineMemory.Plan(Gpt2, H200, Resident(OptimizerStateFormat.EightBit, precision));
        long p = Gpt2.TotalParameters;

        // m and v: 4 bytes each → 1 byte each and an fp32 scale per 2,048 values.
        Bytes saved = fp32.Gpu.Of("optimizer states") - q8.Gpu.Of("optimizer states");
        Assert.Equal(new Bytes(6 * p - 8 * BlockwiseQuantization.Blocks(p)), saved);
        // The peak loses that, and the caching-allocator slack the plan adds in proportion to the device items.
        Bytes peak = fp32.Gpu.Peak - q8.Gpu.Peak;
        Assert.InRange(peak.Value, saved.Value, (long)(saved.Value * 1.05));
        Assert.Contains("8-bit", q8.Gpu.Items.Single(i => i.Name == "optimizer states").Note);
    }
}

using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>The optimizer RAM budget with 8-bit state: the placement, the memory model and the step program count the format's bytes, not 12 per element.</summary>
public class EightBitPlacementTests
{
    private static readonly ModelSpec Gpt2Xl = ModelCatalog.Default.Load("gpt2-xl");
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x");

    private static readonly TrainingSettings EightBitNvme = new()
    {
        ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Nvme, NvmePath = "/nvme",
        GradientOffload = OffloadTier.Cpu, SubGroupSize = 100_000_000, MicroBatch = 4, SeqLen = 1024,
        OptimizerState = OptimizerStateFormat.EightBit,
    };

    [Fact]
    public void Given_a_budget_holding_the_whole_8bit_state_but_not_fp32_When_planned_Then_nothing_of_the_optimizer_is_on_nvme()
    {
        // The 8-bit state plus a page of slack for per-sub-group rounding: about half of what fp32 state would need.
        Bytes budget = OptimizerStateFormat.EightBit.StateBytes(Gpt2Xl.TotalParameters) + Bytes.FromKiB(4);
        Assert.True(budget < Bytes.OfElements(Gpt2Xl.TotalParameters, 12));

        var q8 = TrainingPlanner.Plan(Gpt2Xl, H200, EightBitNvme with { OptimizerRamBudget = budget });
        var fp32 = TrainingPlanner.Plan(Gpt2Xl, H200, EightBitNvme with { OptimizerRamBudget = budget, OptimizerState = OptimizerStateFormat.Fp32 });

        Assert.Empty(q8.SettingsProblems);
        Assert.Equal(Bytes.Zero, q8.Memory.Nvme.Of("optimizer states"));
        Assert.Equal(OptimizerStateFormat.EightBit.StateBytes(Gpt2Xl.TotalParameters), q8.Memory.CpuPageable.Of("optimizer states") + q8.Memory.CpuPinned.Of("optimizer states"));
        Assert.Equal(Bytes.Zero, q8.Step!.Traffic.NvmeWrite);
        // The same budget at fp32's 12 bytes per element leaves part of the optimizer on NVMe, swapped every step.
        Assert.True(fp32.Memory.Nvme.Of("optimizer states") > Bytes.Zero);
        Assert.True(fp32.Step!.Traffic.NvmeWrite > Bytes.Zero);
    }

    [Fact]
    public void Given_8bit_state_and_a_partial_budget_When_planned_Then_nvme_state_is_the_8bit_bytes_of_the_swapped_sub_groups()
    {
        var s = EightBitNvme with { OptimizerRamBudget = Bytes.FromGiB(4) };
        var (ram, nvme) = EngineMemory.OptimizerSplit(Gpt2Xl, s);

        var plan = TrainingPlanner.Plan(Gpt2Xl, H200, s);

        Assert.True(ram > 0 && nvme > 0, $"split {ram} / {nvme}");
        Assert.Equal(OptimizerStateFormat.EightBit.StateBytes(nvme), plan.Memory.Nvme.Of("optimizer states"));
        // Each swapped sub-group is read and written once per step at its 8-bit bytes (gradients stay in RAM here).
        Assert.InRange(plan.Step!.Traffic.NvmeWrite.Value, OptimizerStateFormat.EightBit.StateBytes(nvme).Value, OptimizerStateFormat.EightBit.StateBytes(nvme).Value + 64L * 1024 * 1024);
    }
}

using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Core.Tests;

/// <summary>The simulator charges NVMe traffic at the drive's measured swap rates for the run's own swap working set.</summary>
public class SwapRateTests
{
    private static readonly TrainingSettings OnNvme = new()
    {
        ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Nvme, NvmePath = "/nvme",
        MicroBatch = 8, ActivationCheckpointing = true, Precision = Precision.Bf16,
    };

    private static HardwareProfile WithSwap(HardwareProfile hw, SwapBehaviour? swap) =>
        hw with { Drives = [.. hw.Drives.Select(d => d with { Swap = swap })] };

    [Fact]
    public void Given_swap_factors_of_two_When_an_nvme_bound_step_is_simulated_Then_the_nvme_time_halves()
    {
        var hw = ProfileCatalog.Default.Load("h200-1x");
        var model = ModelCatalog.Default.Load("gpt2-xl");
        var plain = Simulator.Predict(model, WithSwap(hw, null), OnNvme);
        var doubled = Simulator.Predict(model, WithSwap(hw, new SwapBehaviour { Points = [new SwapPoint(1, 2, 2)] }), OnNvme);

        Assert.Equal(ResourceKind.Nvme, plain.Bottleneck);
        Assert.Equal(plain.Busy[ResourceKind.Nvme].Seconds / 2, doubled.Busy[ResourceKind.Nvme].Seconds, plain.Busy[ResourceKind.Nvme].Seconds * 1e-3);
        Assert.Equal(plain.Traffic.NvmeRead, doubled.Traffic.NvmeRead);
    }

    [Fact]
    public void Given_a_cache_that_favours_small_working_sets_When_two_models_are_simulated_Then_each_gets_the_factor_at_its_own_swap_size()
    {
        var hw = WithSwap(ProfileCatalog.Default.Load("h200-1x"), new SwapBehaviour { Points = [new SwapPoint(4, 3, 1), new SwapPoint(64, 1, 1)] });
        var small = ModelCatalog.Default.Load("gpt2");
        var large = ModelCatalog.Default.Load("gpt2-xl");

        double Ratio(ModelSpec m)
        {
            var fast = Simulator.Predict(m, hw, OnNvme);
            var flat = Simulator.Predict(m, WithSwap(hw, null), OnNvme);
            return fast.Busy[ResourceKind.Nvme].Seconds / flat.Busy[ResourceKind.Nvme].Seconds;
        }

        // gpt2's swap files (~2 GB) sit below the first point: reads three times as fast. gpt2-xl's (~26 GiB) sit between the points.
        Assert.InRange(Ratio(small), 0.3, 0.7);
        Assert.InRange(Ratio(large), Ratio(small) + 0.05, 0.99);
    }
}

using AiOs.Planner.Calibration.Host;
using AiOs.Planner.Hardware;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Tests;

/// <summary><see cref="ProfileBuilder.WithHost"/>: a profile's host figures re-measured, everything else kept.</summary>
public class ProfileBuilderHostTests
{
    private static readonly HostCalibration Host = new()
    {
        Threads = 16, MemcpyOneThread = Bandwidth.FromGBps(10), MemcpyAllThreads = Bandwidth.FromGBps(46.2), AdamOneThread = 3e8, AdamAllThreads = 4.96e9,
        AdamBf16OneThread = 2.5e8, AdamBf16AllThreads = 4.04e9, AdamBf16SubGroup = 32L << 20,
        AdamCalls = [new(16 << 10, 1.2e-3 + (16 << 10) / 4.8e9), new(16 << 20, 1.2e-3 + (16 << 20) / 4.8e9)],
        AdamCallFit = new CallCostFit(1.2e-3, 1 / 4.8e9),
    };

    [Fact]
    public void Given_a_calibrated_gpu_profile_When_its_host_is_remeasured_Then_only_memory_copy_the_adam_figures_and_the_call_cost_change()
    {
        var before = ProfileCatalog.Default.Load("h100-1x-vm");
        before = before with { Cpu = before.Cpu with { Adam8ParamsPerS = new Figure(1.8e9), AdamFp16ParamsPerS = new Figure(3.1e9) } };

        var after = ProfileBuilder.WithHost(before, Host, "2026-12-06");

        Assert.Equal(4.96e9, after.Cpu.AdamParamsPerS.Value);
        Assert.Equal(4.04e9, after.Cpu.AdamBf16ParamsPerS!.Value);
        Assert.Equal(1.2e-3, after.Cpu.OptimizerCallOverhead);
        Assert.Contains("16 K, 16 M parameters", after.Cpu.OptimizerCallOverheadS!.Provenance!.Method);
        Assert.Equal("2026-12-06", after.Cpu.AdamBf16ParamsPerS.Provenance!.Date);
        Assert.Equal(46.2, after.Cpu.MemoryBandwidthGbps.Value);
        Assert.Equal(before.Drives, after.Drives);
        Assert.Equal(before.Gpu, after.Gpu);
        Assert.Equal(before.HostLink, after.HostLink);
        Assert.Equal(before.Cpu.RamGib, after.Cpu.RamGib);
        Assert.Equal(before.Cpu.MatmulGflops, after.Cpu.MatmulGflops);
        Assert.Equal(before.Cpu.LayerCompute, after.Cpu.LayerCompute);
        Assert.Equal(before.Cpu.Adam8ParamsPerS, after.Cpu.Adam8ParamsPerS);
        Assert.Equal(3.1e9, after.Cpu.AdamFp16ParamsPerS!.Value); // not measured by this host run: kept
        var fp16 = ProfileBuilder.WithHost(before, Host with { AdamFp16OneThread = 2e8, AdamFp16AllThreads = 3.7e9 }, "2026-12-08");
        Assert.Equal(3.7e9, fp16.Cpu.AdamFp16ParamsPerS!.Value);
        Assert.Equal("2026-12-06", after.Machine!["host_calibration_date"]);
        after.Validated("h100-1x-vm.json");
    }
}

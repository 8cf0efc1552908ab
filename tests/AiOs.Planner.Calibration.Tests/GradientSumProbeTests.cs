using AiOs.Planner.Calibration.Host;
using AiOs.Planner.Hardware;
using AiOs.Planner.Optim;
using AiOs.Planner.Simulation;

namespace AiOs.Planner.Calibration.Tests;

public class GradientSumProbeTests
{
    [Fact]
    public void Given_a_few_units_When_the_gradient_sum_pass_is_timed_Then_it_reports_a_plausible_traffic_rate()
    {
        var rate = GradientSumProbe.Measure(3 << 20, TimeSpan.FromMilliseconds(20), CancellationToken.None);

        // Any machine this runs on moves between 0.1 and 10,000 GB/s of memory traffic.
        Assert.InRange(rate.GBps, 0.1, 10_000);
    }

    [Fact]
    public void Given_bf16_values_When_added_into_sums_Then_each_sum_gains_its_exact_fp32_value()
    {
        var sums = Enumerable.Range(0, 1000).Select(i => (float)i).ToArray();
        var bf16 = Enumerable.Range(0, 1000).Select(i => (ushort)(BitConverter.SingleToUInt32Bits(0.5f * i) >> 16)).ToArray();

        GradientSums.AddBf16(sums, bf16);

        for (int i = 0; i < sums.Length; i++) Assert.Equal(i + BitConverter.UInt32BitsToSingle((uint)bf16[i] << 16), sums[i]);
    }

    [Fact]
    public void Given_a_measured_gradient_sum_rate_When_the_pass_is_priced_Then_it_takes_that_rate_not_the_memory_copy_s()
    {
        var vm = ProfileCatalog.Default.Load("h100-1x-vm");
        var without = vm.Cpu with { HostAddGbps = null };
        long elements = 20_000_000;

        var measured = HostPass.AddOf(vm.Cpu, 1).Time(elements, GradientSumProbe.BytesPerElement, HostSplit.Even);
        var fallback = HostPass.AddOf(without, 1).Time(elements, GradientSumProbe.BytesPerElement, HostSplit.Even);

        Assert.Equal(elements * 10.0 / (vm.Cpu.HostAddGbps!.Value * 1e9), measured.Seconds, 6);
        Assert.Equal(HostPass.Of(without, 1).Time(elements, 10, HostSplit.Even), fallback);
        Assert.True(measured < fallback, "the pass moves more than the memory copy's bytes-copied rate");
    }
}

using AiOs.Planner.Hardware;

namespace AiOs.Planner.Calibration.Tests;

public class StorageAdviceTests
{
    private static HardwareProfile With(double readGbps, double writeGbps, double adam) => new()
    {
        Name = "t",
        Cpu = new CpuSpec { Cores = 8, RamGib = 64, MemoryBandwidthGbps = 20, AdamParamsPerS = adam },
        Drives = [new DriveSpec { CapacityGb = 1000, Read = new DriveDirection { PeakGbps = readGbps, HalfInflightKib = 0 }, Write = new DriveDirection { PeakGbps = writeGbps, HalfInflightKib = 0 } }],
    };

    [Fact]
    public void Given_a_drive_that_keeps_up_with_CPU_Adam_When_checked_Then_there_is_no_warning()
    {
        // 12 B/param at 25 GB/s both ways: 0.96 s per billion parameters against 1 s of Adam.
        Assert.Empty(StorageAdvice.Check(With(25, 25, 1e9), null));
    }

    [Fact]
    public void Given_a_drive_far_slower_than_CPU_Adam_When_checked_Then_it_says_how_much_slower_the_step_gets()
    {
        var warnings = StorageAdvice.Check(With(1.2, 2.4, 1e9), null);

        var w = Assert.Single(warnings);
        Assert.Contains("15.0 s of I/O", w, StringComparison.Ordinal);
        Assert.Contains("15× slower", w, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_a_drive_below_half_a_GB_per_second_When_checked_Then_it_says_offload_does_not_pay()
    {
        Assert.Contains(StorageAdvice.Check(With(0.3, 0.3, 1e8), null), w => w.Contains("too slow for NVMe offload to pay", StringComparison.Ordinal));
    }
}

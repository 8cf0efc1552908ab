using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

public class DriveSpecTests
{
    private static AioSettings Aio(int blockKiB, int depth, int threads = 1) =>
        new() { BlockSize = Bytes.FromKiB(blockKiB), QueueDepth = depth, IntraOpParallelism = threads };

    [Fact]
    public void Given_no_block_term_When_asked_Then_throughput_depends_only_on_bytes_in_flight()
    {
        var d = new DriveDirection { PeakGbps = 4, HalfInflightKib = 1024 };

        Assert.Equal(2.0, d.Throughput(Aio(1024, 1)).GBps, 1e-9);
        Assert.Equal(d.Throughput(Aio(256, 8)).GBps, d.Throughput(Aio(1024, 2)).GBps, 1e-9);
    }

    [Fact]
    public void Given_a_block_term_When_blocks_shrink_at_equal_bytes_in_flight_Then_throughput_falls()
    {
        var d = new DriveDirection { PeakGbps = 4, HalfInflightKib = 0, HalfBlockKib = 128 };

        Assert.Equal(2.0, d.Throughput(Aio(128, 64)).GBps, 1e-9);
        Assert.True(d.Throughput(Aio(128, 64)) < d.Throughput(Aio(1024, 8)));
    }

    [Fact]
    public void Given_a_negative_half_block_When_validated_Then_the_field_is_named()
    {
        var profile = new HardwareProfile
        {
            Name = "t",
            Cpu = new CpuSpec { Cores = 1, RamGib = 1, MemoryBandwidthGbps = 1, AdamParamsPerS = 1 },
            Drives = [new DriveSpec { CapacityGb = 1, Read = new DriveDirection { PeakGbps = 1, HalfBlockKib = -1 }, Write = new DriveDirection { PeakGbps = 1 } }],
        };

        var e = Assert.Throws<DescriptionException>(() => profile.Validated("t"));
        Assert.Contains("drives[0].read.half_block_kib", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_a_profile_written_before_the_block_term_When_loaded_Then_it_predicts_as_before()
    {
        var read = ProfileCatalog.Default.Load("rtx4090-64gb-pcie4").Drives[0].Read;
        double inflightKib = 1024 * 8;

        Assert.Null(read.HalfBlockKib);
        Assert.Equal(read.PeakGbps.Value * inflightKib / (inflightKib + read.HalfInflightKib.Value), read.Throughput(new AioSettings()).GBps, 1e-9);
    }

    private static readonly SwapBehaviour Swap = new()
    {
        Points = [new SwapPoint(4, 2.0, 1.5), new SwapPoint(16, 1.0, 1.0)],
    };

    [Theory]
    [InlineData(1, 2.0, 1.5)]
    [InlineData(4, 2.0, 1.5)]
    [InlineData(8, 1.5, 1.25)]
    [InlineData(16, 1.0, 1.0)]
    [InlineData(64, 1.0, 1.0)]
    public void Given_swap_points_When_asked_for_a_working_set_Then_factors_are_linear_in_log_size_and_flat_outside(double gib, double read, double write)
    {
        Assert.Equal(read, Swap.ReadFactorAt(Bytes.FromGiB(gib)), 1e-9);
        Assert.Equal(write, Swap.WriteFactorAt(Bytes.FromGiB(gib)), 1e-9);
    }

    [Fact]
    public void Given_two_striped_drives_with_swap_points_When_swap_rates_are_asked_Then_each_drive_gets_half_the_working_set()
    {
        var drive = new DriveSpec { Count = 2, CapacityGb = 1000, Read = new DriveDirection { PeakGbps = 4, HalfInflightKib = 0 }, Write = new DriveDirection { PeakGbps = 2, HalfInflightKib = 0 }, Swap = Swap };
        var aio = new AioSettings();

        // 16 GiB over two drives is 8 GiB each: factors 1.5 and 1.25.
        Assert.Equal(8 * 1.5, drive.SwapReadRate(aio, Bytes.FromGiB(16)).GBps, 1e-9);
        Assert.Equal(4 * 1.25, drive.SwapWriteRate(aio, Bytes.FromGiB(16)).GBps, 1e-9);
        Assert.Equal(drive.ReadRate(aio).GBps, (drive with { Swap = null }).SwapReadRate(aio, Bytes.FromGiB(16)).GBps, 1e-12);
    }

    [Fact]
    public void Given_a_swap_point_with_a_zero_factor_When_validated_Then_the_field_is_named()
    {
        var profile = new HardwareProfile
        {
            Name = "t",
            Cpu = new CpuSpec { Cores = 1, RamGib = 1, MemoryBandwidthGbps = 1, AdamParamsPerS = 1 },
            Drives = [new DriveSpec { CapacityGb = 1, Read = new DriveDirection { PeakGbps = 1 }, Write = new DriveDirection { PeakGbps = 1 }, Swap = new SwapBehaviour { Points = [new SwapPoint(4, 1, 0)] } }],
        };

        var e = Assert.Throws<DescriptionException>(() => profile.Validated("t"));
        Assert.Contains("drives[0].swap.points[0].write_factor", e.Message, StringComparison.Ordinal);
    }
}

using AiOs.Planner.Calibration.Drive;
using AiOs.Planner.Calibration.Machine;
using AiOs.Planner.Hardware;
using AiOs.Planner.Settings;
using AiOs.Planner.Storage;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Tests;

public class ProfileBuilderTests
{
    private static readonly MachineFacts Machine = new()
    {
        CpuModel = "Test CPU",
        Cores = 16,
        Ram = Bytes.FromGiB(128),
        Storage = new StorageFacts { Path = "/mnt/nvme", FileSystem = "xfs", BlockDevice = "nvme0n1", DeviceModel = "Fast SSD", Rotational = false, DirectIo = true, Total = Bytes.FromGB(2000), Free = Bytes.FromGB(1500) },
    };

    private static DriveCalibration Drive(double readPeak, double writePeak, Bandwidth? sustained = null)
    {
        var reads = Synthetic.Samples(readPeak, 512, 0);
        var writes = Synthetic.Samples(writePeak, 512, 0);
        return new DriveCalibration
        {
            TestFileSize = Bytes.FromGiB(4),
            DirectIo = true,
            Layout = [],
            ReadSamples = reads,
            ReadCurve = DriveCurveFit.Fit(reads),
            WriteSamples = writes,
            WriteCurve = DriveCurveFit.Fit(writes),
            Cache = new CacheFinding(sustained is null ? null : "cache", sustained),
        };
    }

    private static readonly HostCalibration Host = new()
    {
        Threads = 16, MemcpyOneThread = Bandwidth.FromGBps(10), MemcpyAllThreads = Bandwidth.FromGBps(40), AdamOneThread = 2e8, AdamAllThreads = 2e9,
    };

    [Fact]
    public void Given_a_GPU_profile_as_base_When_built_Then_the_GPU_and_links_are_kept_and_CPU_and_drive_are_measured()
    {
        var gpuBase = ProfileCatalog.Default.Load("h200-1x");
        var options = new CalibrationOptions { NvmePath = "/mnt/nvme", Base = gpuBase, Date = "2026-11-27" };

        var profile = ProfileBuilder.Build(options, Machine, Drive(6.5, 5.0), Host);

        Assert.Equal(gpuBase.Gpu, profile.Gpu);
        Assert.Equal(gpuBase.HostLink, profile.HostLink);
        Assert.Equal(gpuBase.GpusPerNode, profile.GpusPerNode);
        Assert.Equal(FigureSource.Measured, profile.Cpu.AdamParamsPerS.Provenance!.Source);
        Assert.Equal(2e9, profile.Cpu.AdamParamsPerS.Value);
        Assert.Equal("2026-11-27", profile.Drives[0].Read.PeakGbps.Provenance!.Date);
        Assert.Equal(6.5, profile.Drives[0].Read.PeakGbps.Value, 0.05);
        Assert.Equal("Test CPU", profile.Machine!["cpu_model"]);
        Assert.Equal("xfs", profile.Machine["drive_filesystem"]);
        Assert.Equal("Fast SSD (xfs)", profile.Drives[0].Model);
    }

    [Fact]
    public void Given_a_base_with_calibrated_cpu_compute_When_rebuilt_Then_the_compute_figures_are_kept()
    {
        var compute = new CpuLayerCompute
        {
            MatmulEfficiency = Figure.Measured(0.8, "2026-11-26", "fit"),
            SavedBytesGbps = Figure.Measured(4.5, "2026-11-26", "fit"),
            LayerOverheadUs = Figure.Measured(250, "2026-11-26", "fit"),
            BackwardRatio = Figure.Measured(1.6, "2026-11-26", "fit"),
        };
        var cpuBase = ProfileCatalog.Default.Load("ci-2core-24gb");
        cpuBase = cpuBase with { Cpu = cpuBase.Cpu with { MatmulGflops = Figure.Measured(120, "2026-11-26", "matmul"), LayerCompute = compute } };
        var options = new CalibrationOptions { NvmePath = "/mnt/nvme", Base = cpuBase, Date = "2026-11-27" };

        var profile = ProfileBuilder.Build(options, Machine, Drive(3.0, 2.0), Host);

        Assert.Equal(compute, profile.Cpu.LayerCompute);
        Assert.Equal(120, profile.Cpu.MatmulGflops!.Value);
        Assert.Equal(2e9, profile.Cpu.AdamParamsPerS.Value);
    }

    [Fact]
    public void Given_a_built_profile_When_written_and_loaded_Then_it_validates_and_keeps_samples_and_fit()
    {
        var options = new CalibrationOptions { NvmePath = "/mnt/nvme", Date = "2026-11-27", Name = "mine" };
        var profile = ProfileBuilder.Build(options, Machine, Drive(3.0, 2.0), Host);

        var loaded = ProfileCatalog.Parse(ProfileWriter.ToJson(profile), "test");

        Assert.Equal("mine", loaded.Name);
        Assert.Equal(0, loaded.GpusPerNode);
        Assert.Equal(profile.Drives[0].Read.Samples!.Count, loaded.Drives[0].Read.Samples!.Count);
        Assert.Equal(profile.Drives[0].Read.RSquared, loaded.Drives[0].Read.RSquared);
        var aio = new AioSettings();
        Assert.Equal(profile.Drives[0].ReadRate(aio).GBps, loaded.Drives[0].ReadRate(aio).GBps, 1e-3);
        Assert.DoesNotContain("\"capacity\"", ProfileWriter.ToJson(profile), StringComparison.Ordinal);
    }

    [Fact]
    public void Given_a_description_calibrated_before_When_stamped_again_Then_it_carries_one_stamp_with_the_new_date()
    {
        string once = ProfileBuilder.Stamped("A VM.", "2026-01-01");
        string twice = ProfileBuilder.Stamped(once, "2026-11-27");

        Assert.StartsWith("A VM. [CPU, memory and drive calibrated 2026-11-27", twice, StringComparison.Ordinal);
        Assert.DoesNotContain("2026-01-01", twice, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, "vda", "virtio disk vda")]
    [InlineData("", "nvme0n1", "nvme0n1")]
    [InlineData("Samsung 990", "nvme0n1", "Samsung 990")]
    [InlineData(null, null, "unknown drive")]
    public void Given_what_sys_block_says_When_the_drive_is_named_Then_the_model_or_a_device_name_is_used(string? model, string? device, string expected)
    {
        Assert.Equal(expected, ProfileBuilder.DriveName(new StorageFacts { Path = "/", DeviceModel = model, BlockDevice = device }));
    }

    [Fact]
    public void Given_a_write_cache_with_a_lower_sustained_rate_When_built_Then_the_write_peak_is_the_sustained_rate()
    {
        var options = new CalibrationOptions { NvmePath = "/mnt/nvme", Date = "2026-11-27" };

        var profile = ProfileBuilder.Build(options, Machine, Drive(1.5, 4.0, Bandwidth.FromGBps(1.2)), Host);

        Assert.Equal(1.2, profile.Drives[0].Write.PeakGbps.Value, 1e-6);
        Assert.Contains("sustained", profile.Drives[0].Write.PeakGbps.Provenance!.Method, StringComparison.Ordinal);
        Assert.Equal("cache", profile.Drives[0].CacheNote);
    }

    [Fact]
    public void Given_all_threads_slower_than_one_on_a_busy_machine_When_built_Then_the_better_rate_is_recorded()
    {
        var options = new CalibrationOptions { NvmePath = "/mnt/nvme", Date = "2026-11-27" };
        var busy = Host with { AdamOneThread = 9e8, AdamAllThreads = 6e8 };

        var profile = ProfileBuilder.Build(options, Machine, Drive(1.5, 1.5), busy);

        Assert.Equal(9e8, profile.Cpu.AdamParamsPerS.Value);
    }

    [Fact]
    public void Given_swap_cycles_When_built_Then_each_working_set_gets_its_rates_over_the_curves_at_the_probe_settings_and_survives_a_round_trip()
    {
        var aio = new AioSettings();
        var drive = Drive(3.0, 2.0);
        var curveRead = DriveCurveFit.Fit(drive.ReadSamples);
        var curveWrite = DriveCurveFit.Fit(drive.WriteSamples);
        var readAt = new DriveDirection { PeakGbps = curveRead.PeakGbps, HalfInflightKib = curveRead.HalfInflightKib, HalfBlockKib = curveRead.HalfBlockKib }.Throughput(aio);
        var writeAt = new DriveDirection { PeakGbps = curveWrite.PeakGbps, HalfInflightKib = curveWrite.HalfInflightKib, HalfBlockKib = curveWrite.HalfBlockKib }.Throughput(aio);
        // 2 GiB read twice in the time the curve needs for 2.4 GiB; rewrites at 80% of the write curve.
        var small = new SwapMeasurement(aio, Bytes.FromMiB(128), Bytes.FromGiB(2), 2,
            TimeSpan.FromSeconds(4 * Bytes.GiBValue / readAt.BytesPerSecond / 1.2), TimeSpan.FromSeconds(4 * Bytes.GiBValue / writeAt.BytesPerSecond / 0.8));
        var large = small with { WorkingSet = Bytes.FromGiB(4), ReadTime = small.ReadTime * 2 * 1.2, WriteTime = small.WriteTime * 2 };
        var options = new CalibrationOptions { NvmePath = "/mnt/nvme", Date = "2026-11-27" };

        var profile = ProfileBuilder.Build(options, Machine, drive with { Swap = [small, large] }, Host);
        var loaded = ProfileCatalog.Parse(ProfileWriter.ToJson(profile), "test");

        var points = loaded.Drives[0].Swap!.Points;
        Assert.Equal([2.0, 4.0], points.Select(p => p.WorkingSetGib));
        Assert.Equal(1.2, points[0].ReadFactor, 0.002);
        Assert.Equal(0.8, points[0].WriteFactor, 0.002);
        Assert.Equal(1.0, points[1].ReadFactor, 0.002);
        Assert.Contains("engine's swap I/O", loaded.Drives[0].Swap!.Method, StringComparison.Ordinal);
        Assert.Equal(readAt.GBps * 1.2, loaded.Drives[0].SwapReadRate(aio, Bytes.FromGiB(1)).GBps, 0.01);
        Assert.Null(ProfileBuilder.Build(options, Machine, drive, Host).Drives[0].Swap);
    }
}

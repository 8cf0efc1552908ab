using AiOs.Planner.Engine.Probes;
using AiOs.Planner.Hardware;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Tests;

public class GpuProbeTests
{
    /// <summary>An H200's copies and its bf16 matmul rate, with no beside-the-update or beside-the-copies figures.</summary>
    private static GpuMeasurement H200Bf16() => new("NVIDIA H200", Bytes.FromGiB(140.4), Bandwidth.FromGBps(54.9), Bandwidth.FromGBps(55.1),
        Bandwidth.FromGBps(6.2), Bandwidth.FromGBps(5.9), new Dictionary<string, double> { ["bf16"] = 745 }, []);

    [Fact]
    public void Given_a_measurement_When_applied_to_a_profile_Then_gpu_and_link_figures_are_measured_and_the_rest_is_kept()
    {
        var profile = ProfileCatalog.Default.Load("h200-1x-calibrated");
        var m = new GpuMeasurement("NVIDIA H200", Bytes.FromGiB(140.4), Bandwidth.FromGBps(54.9), Bandwidth.FromGBps(55.1),
            Bandwidth.FromGBps(6.2), Bandwidth.FromGBps(5.9), new Dictionary<string, double> { ["bf16"] = 745, ["fp32"] = 51 }, []);
        var updated = GpuProbe.Apply(profile, m, "2026-11-27");
        Assert.Equal(745, updated.Gpu!.MatmulTflops!.Bf16!.Value);
        Assert.Equal(FigureSource.Measured, updated.Gpu.MatmulTflops.Bf16.Provenance!.Source);
        Assert.Equal(51, updated.Gpu.MatmulTflops.Fp32!.Value);
        Assert.Equal(54.9, updated.HostLink!.H2dPinnedGbps.Value);
        Assert.Equal(5.9, updated.HostLink.D2hPageableGbps.Value);
        Assert.Equal(140.4, updated.Gpu.MemoryGib.Value, 3);
        Assert.Equal(profile.Drives, updated.Drives);
        Assert.Equal(profile.Cpu, updated.Cpu);
    }

    [Fact]
    public void Given_a_machine_without_cuda_When_probed_Then_the_error_says_what_is_needed()
    {
        if (TorchSharp.torch.cuda.is_available()) return;
        var e = Assert.Throws<InvalidOperationException>(() => GpuProbe.Measure());
        Assert.Contains("No CUDA device", e.Message);
    }

    [Fact]
    public void Given_the_update_slower_beside_copies_When_the_interference_is_derived_Then_it_is_its_lost_traffic_per_copied_byte_and_never_negative()
    {
        // 5.0 → 4.5 G params/s beside 28 GB/s of copies: 0.5 G/s × 28 B = 14 GB/s lost, half a byte per copied byte.
        Assert.Equal(0.5, GpuProbe.BytesLostPerCopiedByte(5.0e9, 4.5e9, 28e9), 12);
        Assert.Equal(0, GpuProbe.BytesLostPerCopiedByte(5.0e9, 5.1e9, 28e9));
    }

    [Fact]
    public void Given_a_measured_interference_When_applied_Then_the_link_carries_it_and_a_measurement_without_one_keeps_the_profile_s()
    {
        var profile = ProfileCatalog.Default.Load("h200-1x-calibrated");
        var m = H200Bf16() with { CpuUpdateBytesLostPerCopiedByte = 0.42 };

        var updated = GpuProbe.Apply(profile, m, "2026-12-06");
        var again = GpuProbe.Apply(updated, m with { CpuUpdateBytesLostPerCopiedByte = null }, "2026-12-07");

        Assert.Equal(0.42, updated.HostLink!.CpuUpdateBytesLostPerCopiedByte!.Value);
        Assert.Equal(FigureSource.Measured, updated.HostLink.CpuUpdateBytesLostPerCopiedByte.Provenance!.Source);
        Assert.Equal(0.42, again.HostLink!.CpuUpdateBytesLostPerCopiedByte!.Value);
    }

    [Fact]
    public void Given_alternating_windows_When_the_interference_is_taken_Then_each_beside_window_meets_the_alone_windows_around_it()
    {
        // The host's pace drifts down 1 G params/s a window; beside the copies (10 GB/s) the update loses 0.5 G/s more.
        double[] alone = [6e9, 5e9, 4e9, 3e9];
        (double, double)[] beside = [(5.5e9 - 0.5e9, 10e9), (4.5e9 - 0.5e9, 10e9), (3.5e9 - 0.5e9, 10e9)];

        double lost = GpuProbe.InterferenceOf(alone, beside)!.Value;

        // 0.5 G params/s × 28 B ÷ 10 GB/s = 1.4, in every window alike: the drift cancels. Medians of all alone and all beside
        // windows taken apart would read (5.0 − 4.0) × 28 ÷ 10 = 2.8 here (5.0 the upper of the two middle alone rates).
        Assert.Equal(1.4, lost, 9);
        // Beside the copies at the pace of the windows around them: nothing lost, however the pace drifts.
        Assert.Equal(0, GpuProbe.InterferenceOf([6e9, 5e9, 4e9, 3e9], [(5.5e9, 10e9), (4.5e9, 10e9), (3.5e9, 10e9)])!.Value, 9);
        Assert.Null(GpuProbe.InterferenceOf([0, 0], [(0, 0)]));
        Assert.Throws<ArgumentException>(() => GpuProbe.InterferenceOf([1e9, 1e9], [(1e9, 1e9), (1e9, 1e9)]));
    }

    [Fact]
    public void Given_a_measurement_whose_interference_failed_When_applied_Then_the_profile_keeps_no_figure_of_that_kind()
    {
        var profile = ProfileCatalog.Default.Load("h200-1x-calibrated");
        var m = H200Bf16() with
        {
            CpuUpdateBytesLostPerCopiedByte = 0.42, PinnedBesideCpuUpdate = (Bandwidth.FromGBps(44), Bandwidth.FromGBps(50)),
        };
        var measured = GpuProbe.Apply(profile, m, "2026-12-06");
        Assert.NotNull(measured.HostLink!.H2dPinnedBesideCpuUpdateGbps);

        var failed = GpuProbe.Apply(measured, m with { CpuUpdateBytesLostPerCopiedByte = null, PinnedBesideCpuUpdate = null, BesideCpuUpdateFailed = true }, "2026-12-07");

        Assert.Null(failed.HostLink!.CpuUpdateBytesLostPerCopiedByte);
        Assert.Null(failed.HostLink.H2dPinnedBesideCpuUpdateGbps);
        Assert.Null(failed.HostLink.D2hPinnedBesideCpuUpdateGbps);
        Assert.Equal(54.9, failed.HostLink.H2dPinnedGbps.Value, 3);
        failed.Validated("test.json");
    }

    [Fact]
    public void Given_alternating_windows_When_the_gradient_sums_share_is_taken_Then_each_beside_window_meets_the_alone_windows_around_it()
    {
        // A host slowing down by 1 G elements/s a window: beside windows at 0.5 of the mean around them each time.
        Assert.Equal(0.5, GpuProbe.ShareOf([6e9, 5e9, 4e9, 3e9], [2.75e9, 2.25e9, 1.75e9])!.Value, 9);
        // The median, so one disturbed window does not move it.
        Assert.Equal(0.8, GpuProbe.ShareOf([1e9, 1e9, 1e9, 1e9], [0.8e9, 0.1e9, 0.9e9])!.Value, 9);
        Assert.Null(GpuProbe.ShareOf([0, 0], [1e9]));
        Assert.Throws<ArgumentException>(() => GpuProbe.ShareOf([1e9, 1e9], [1e9, 1e9]));
    }

    [Fact]
    public void Given_a_measured_gradient_sums_share_When_applied_Then_the_link_carries_it_a_failure_clears_it_and_none_keeps_the_profile_s()
    {
        var profile = ProfileCatalog.Default.Load("h200-1x-calibrated");
        var m = H200Bf16() with { HostAddShareBesideCopies = 0.64 };

        var measured = GpuProbe.Apply(profile, m, "2026-12-07");
        var kept = GpuProbe.Apply(measured, m with { HostAddShareBesideCopies = null }, "2026-12-08");
        var failed = GpuProbe.Apply(measured, m with { HostAddShareBesideCopies = null, HostAddBesideCopiesFailed = true }, "2026-12-08");

        Assert.Equal(0.64, measured.HostLink!.HostAddShareBesideCopies!.Value, 9);
        Assert.Equal(FigureSource.Measured, measured.HostLink.HostAddShareBesideCopies.Provenance!.Source);
        Assert.Equal(0.64, kept.HostLink!.HostAddShareBesideCopies!.Value, 9);
        Assert.Null(failed.HostLink!.HostAddShareBesideCopies);
        measured.Validated("test.json");
    }
}

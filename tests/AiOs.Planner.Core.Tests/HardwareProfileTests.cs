using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

public class HardwareProfileTests
{
    [Fact]
    public void Given_every_bundled_profile_When_loaded_Then_each_validates()
    {
        var names = ProfileCatalog.Default.Names();
        foreach (string expected in new[] { "consumer-2x11gb-32gb-pcie3", "consumer-2x11gb-64gb-pcie4", "rtx4090-64gb-pcie4", "dgx-a100", "h100-node", "h200-1x", "ci-2core-24gb" })
            Assert.Contains(expected, names);
        foreach (string name in names)
            Assert.Equal(name, ProfileCatalog.Default.Load(name).Name);
    }

    [Fact]
    public void Given_the_h200_profile_When_loaded_Then_measured_figures_carry_their_provenance()
    {
        var h200 = ProfileCatalog.Default.Load("h200-1x");
        Assert.Equal(143_771L * Bytes.MiBValue, h200.Gpu!.Memory.Value, 1_000_000.0);
        Assert.Equal(790, h200.Gpu.MatmulRate(Precision.Bf16).Tflops, 3);
        var provenance = h200.ProvenanceOf(h200.HostLink!.H2dPinnedGbps);
        Assert.Equal(FigureSource.Measured, provenance.Source);
        Assert.NotNull(provenance.Method);
        Assert.Equal(FigureSource.Datasheet, h200.ProvenanceOf(h200.Gpu.MemoryBandwidthGbps).Source);
    }

    [Fact]
    public void Given_a_drive_curve_When_more_bytes_are_in_flight_Then_throughput_rises_toward_the_peak()
    {
        var drive = ProfileCatalog.Default.Load("rtx4090-64gb-pcie4").Drives[0];
        var qd1 = drive.ReadRate(new AioSettings { QueueDepth = 1 });
        var qd32 = drive.ReadRate(new AioSettings { QueueDepth = 32 });
        Assert.True(qd32 > qd1);
        Assert.True(qd32.GBps < drive.Read.PeakGbps.Value);
        Assert.True(qd32.GBps > 0.95 * drive.Read.PeakGbps.Value);
    }

    [Fact]
    public void Given_a_gpu_count_without_a_gpu_section_When_loaded_Then_the_error_names_the_field()
    {
        const string json = """
            {"name": "x", "gpus_per_node": 2, "cpu": {"cores": 4, "ram_gib": 16, "memory_bandwidth_gbps": 20, "adam_params_per_s": 1e9}}
            """;
        var e = Assert.Throws<DescriptionException>(() => ProfileCatalog.Parse(json, "x.json"));
        Assert.Contains("$.gpu: is required", e.Message);
        Assert.Contains("$.host_link: is required", e.Message);
    }

    [Fact]
    public void Given_an_unknown_key_When_loaded_Then_the_error_names_it()
    {
        const string json = """
            {"name": "x", "cpu": {"cores": 4, "ram_gb": 16, "memory_bandwidth_gbps": 20, "adam_params_per_s": 1e9}}
            """;
        var e = Assert.Throws<DescriptionException>(() => ProfileCatalog.Parse(json, "x.json"));
        Assert.Contains("ram_gb", e.Message);
    }

    [Fact]
    public void Given_a_figure_object_When_round_tripped_Then_value_and_provenance_survive()
    {
        var profile = ProfileCatalog.Default.Load("h200-1x");
        string path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "copy.json");
        DescriptionJson.WriteFileAtomic(path, profile);
        var copy = ProfileCatalog.LoadFile(path);
        Assert.Equal(profile.HostLink!.H2dPinnedGbps, copy.HostLink!.H2dPinnedGbps);
        Assert.Equal(profile.Gpu!.MemoryGib, copy.Gpu!.MemoryGib);
    }
}

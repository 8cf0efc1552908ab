using System.Text.Json.Nodes;
using AiOs.Planner.Calibration;
using AiOs.Planner.Hardware;

namespace AiOs.Planner.Cli.Tests;

public sealed class CalibrateHostOnlyTests
{
    [Fact]
    public void Given_an_existing_profile_When_calibrated_host_only_Then_only_memory_copy_and_cpu_adam_change()
    {
        using var tmp = new TempDir("aios-host-only-");
        string dir = tmp.Path;
        string path = Path.Combine(dir, "machine.json");
        var before = ProfileCatalog.Default.Load("h100-1x-vm");
        var r = CliRunner.Run("calibrate", "--host-only", "--quick", "--base", "h100-1x-vm", "--out", path);

        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        var after = ProfileCatalog.LoadFile(path);
        Assert.Equal("machine", after.Name);
        var a = JsonNode.Parse(ProfileWriter.ToJson(before))!;
        var b = JsonNode.Parse(ProfileWriter.ToJson(after))!;
        foreach (string section in new[] { "drives", "gpu", "host_link" })
            Assert.Equal(a[section]!.ToJsonString(), b[section]!.ToJsonString());
        Assert.Equal(a["cpu"]!["ram_gib"]!.ToJsonString(), b["cpu"]!["ram_gib"]!.ToJsonString());
        Assert.NotNull(after.Cpu.AdamBf16ParamsPerS);
        Assert.Equal(DateTime.UtcNow.ToString("yyyy-MM-dd"), after.Cpu.AdamParamsPerS.Provenance!.Date);
        Assert.Contains("wrote", r.Console);
    }

    [Fact]
    public void Given_neither_a_drive_nor_host_only_When_calibrating_Then_the_error_names_both() =>
        Assert.Contains("--nvme-path is required", CliRunner.Run("calibrate").Console);

    [Fact]
    public void Given_host_only_without_a_profile_When_calibrating_Then_it_asks_for_out()
    {
        var r = CliRunner.Run("calibrate", "--host-only", "--quick");
        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("--host-only updates a profile", r.Console + r.Stderr);
    }
}

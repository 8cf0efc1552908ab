using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Storage;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

public class NvmeCheckTests
{
    private static string NewFolder() => Path.Combine(Path.GetTempPath(), "aios-test-" + Guid.NewGuid().ToString("N"));

    [Fact]
    public void Given_a_missing_folder_When_checked_Then_it_is_created_and_described()
    {
        string folder = NewFolder();
        var result = NvmeCheck.Check(folder, [new MemoryItem("parameters", Bytes.FromMiB(1))]);
        Assert.True(result.Usable, string.Join("; ", result.Problems));
        Assert.True(result.Created);
        Assert.NotNull(result.Facts);
        Assert.NotNull(result.Facts!.FileSystem);
        Assert.True(result.Facts.Free.Value > 0);
        Assert.Equal(Bytes.FromMiB(1) * NvmeCheck.SafetyFactor, result.Required);
        Directory.Delete(folder);
    }

    [Fact]
    public void Given_a_need_larger_than_the_free_space_When_checked_Then_the_problem_says_how_much_is_needed_and_free()
    {
        var result = NvmeCheck.Check(NewFolder(), [new MemoryItem("optimizer states", Bytes.FromGiB(1_000_000))]);
        Assert.False(result.Usable);
        string problem = Assert.Single(result.Problems);
        Assert.Contains("free but needs", problem);
        Assert.Contains("optimizer states", problem);
    }

    [Fact]
    public void Given_a_path_that_is_a_file_When_checked_Then_it_is_unusable()
    {
        string file = Path.GetTempFileName();
        var result = NvmeCheck.Check(file, []);
        Assert.False(result.Usable);
        Assert.Contains("is a file", result.Problems[0]);
    }

    [Fact]
    public void Given_a_tmpfs_folder_When_checked_Then_it_is_refused_because_it_lives_in_ram()
    {
        if (!Directory.Exists("/dev/shm") || StorageInspector.FindMount("/dev/shm").FileSystem != "tmpfs") return;
        string folder = Path.Combine("/dev/shm", "aios-test-" + Guid.NewGuid().ToString("N"));
        var result = NvmeCheck.Check(folder, []);
        Assert.False(result.Usable);
        Assert.Contains(result.Problems, p => p.Contains("tmpfs") && p.Contains("RAM"));
        Directory.Delete(folder);
    }

    [Fact]
    public void Given_an_unusable_folder_and_enough_ram_When_deciding_Then_it_falls_back_to_cpu_unless_told_not_to()
    {
        var model = ModelCatalog.Default.Load("gpt2");
        var hardware = ProfileCatalog.Default.Load("h200-1x");
        var s = new TrainingSettings { ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Nvme, NvmePath = "/nope" };
        var check = NvmeCheck.Check(Path.GetTempFileName(), []);

        var fallback = OffloadFallback.Decide(model, hardware, s, check, allowFallback: true);
        Assert.True(fallback.FellBack);
        Assert.Equal(OffloadTier.Cpu, fallback.Settings.ParamOffload);
        Assert.Equal(OffloadTier.Cpu, fallback.Settings.OptimizerOffload);
        Assert.Contains("Falling back to CPU offload", fallback.Message);

        var strict = OffloadFallback.Decide(model, hardware, s, check, allowFallback: false);
        Assert.True(strict.Failed);
        Assert.Contains("--no-fallback", strict.Message);
    }

    [Fact]
    public void Given_an_unusable_folder_and_too_little_ram_When_deciding_Then_it_fails_with_the_reason()
    {
        var model = ModelCatalog.Default.Load("llama-2-70b");
        var hardware = ProfileCatalog.Default.Load("rtx4090-64gb-pcie4");
        var s = new TrainingSettings { ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Nvme, NvmePath = "/nope", BufferSize = 600_000_000 };
        var check = NvmeCheck.Check(Path.GetTempFileName(), []);
        var decision = OffloadFallback.Decide(model, hardware, s, check, allowFallback: true);
        Assert.True(decision.Failed);
        Assert.Contains("CPU offload is no way out", decision.Message);
    }
}

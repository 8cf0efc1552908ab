using AiOs.Planner.Measurement;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

public class CpuCachesTests
{
    [Theory]
    [InlineData("266240K", 266240L * 1024)]
    [InlineData("32M", 32L << 20)]
    [InlineData("48K\n", 48L * 1024)]
    [InlineData("1024", 1024L)]
    public void Given_sysfs_size_text_When_parsed_Then_the_bytes_are_read(string text, long bytes) =>
        Assert.Equal(new Bytes(bytes), CpuCaches.ParseSize(text));

    [Theory]
    [InlineData("")]
    [InlineData("big")]
    [InlineData("-4K")]
    public void Given_unreadable_size_text_When_parsed_Then_null(string text) => Assert.Null(CpuCaches.ParseSize(text));

    [Fact]
    public void Given_two_sockets_When_the_last_level_is_summed_Then_each_shared_cache_counts_once_and_instruction_caches_never()
    {
        var caches = new List<CpuCaches.CacheEntry>();
        for (int cpu = 0; cpu < 4; cpu++)
        {
            caches.Add(new(1, "Instruction", Bytes.FromKiB(32), $"{cpu}"));
            caches.Add(new(2, "Unified", Bytes.FromMiB(2), $"{cpu}"));
            // CPUs 0-1 share one L3, 2-3 another: two of 105 MiB.
            caches.Add(new(3, "Unified", Bytes.FromMiB(105), cpu < 2 ? "0-1" : "2-3"));
        }

        Assert.Equal(Bytes.FromMiB(210), CpuCaches.LastLevel(caches));
        Assert.Null(CpuCaches.LastLevel([new CpuCaches.CacheEntry(1, "Instruction", Bytes.FromKiB(32), "0")]));
    }

    [Fact]
    public void Given_this_linux_machine_When_read_Then_a_last_level_cache_of_plausible_size_is_found()
    {
        // Not Linux sysfs, or caches without sizes (some ARM64 VMs): nothing to read.
        if (!File.Exists("/sys/devices/system/cpu/cpu0/cache/index0/size")) return;
        Bytes? llc = CpuCaches.LastLevel();
        Assert.NotNull(llc);
        Assert.InRange(llc.Value.Value, 1L << 20, 64L << 30);
    }
}

using AiOs.Planner.Measurement;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

public class HostMemoryTests
{
    [Fact]
    public void Given_a_cgroup_v2_limit_When_read_Then_what_it_has_left_is_the_limit_less_its_use()
    {
        Assert.Equal(Bytes.FromGiB(7), HostMemory.CgroupLeft("8589934592\n", "1073741824\n", null, null));
        // No limit, or a use past the limit: none, and nothing left.
        Assert.Null(HostMemory.CgroupLeft("max\n", "1073741824\n", null, null));
        Assert.Equal(Bytes.Zero, HostMemory.CgroupLeft("1073741824", "2147483648", null, null));
    }

    [Fact]
    public void Given_cgroup_v1_files_When_read_Then_an_unlimited_group_has_no_limit_and_a_limited_one_its_rest()
    {
        Assert.Null(HostMemory.CgroupLeft(null, null, "9223372036854771712\n", "1761464320\n"));
        Assert.Equal(Bytes.FromGiB(3), HostMemory.CgroupLeft(null, null, "4294967296", "1073741824"));
        Assert.Null(HostMemory.CgroupLeft(null, null, null, null));
    }

    [Fact]
    public void Given_meminfo_text_When_read_Then_mem_available_is_its_kib()
    {
        const string meminfo = "MemTotal:       24000000 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\n";
        Assert.Equal(Bytes.FromKiB(20_000_000), HostMemory.MeminfoAvailable(meminfo));
        Assert.Null(HostMemory.MeminfoAvailable("MemTotal: 1 kB\n"));
    }
}

using AiOs.Planner.Engine.Native;

namespace AiOs.Planner.Engine.Tests;

public class HostHeapTests
{
    [Fact]
    public void Given_linux_with_glibc_When_the_heap_is_configured_Then_freed_large_blocks_are_kept_unless_AIOS_SYSTEM_MALLOC_asks_for_the_defaults()
    {
        if (!OperatingSystem.IsLinux()) return; // glibc's mallopt is Linux-only; CI runs Linux
        try
        {
            Environment.SetEnvironmentVariable("AIOS_SYSTEM_MALLOC", "1");
            HostHeap.Configure();
            Assert.Equal("system", HostHeap.Mode);
        }
        finally
        {
            Environment.SetEnvironmentVariable("AIOS_SYSTEM_MALLOC", null);
        }
        HostHeap.Configure();
        Assert.Equal("reuse", HostHeap.Mode);
    }
}

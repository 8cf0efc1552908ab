using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Tests;

public class ModeSettingsTests
{
    /// <summary>
    /// A GPU host's L3 held the quick mode's old 4 M-parameter Adam probe (80 MB with its gradients): CPU Adam measured 4× its
    /// real rate there, and every offloaded plan priced from that profile came out a third to a half fast.
    /// </summary>
    [Theory]
    [InlineData(CalibrationMode.Quick)]
    [InlineData(CalibrationMode.Default)]
    [InlineData(CalibrationMode.Full)]
    public void Given_any_mode_When_its_host_probes_are_sized_Then_they_are_far_beyond_any_cpu_cache(CalibrationMode mode)
    {
        var m = ModeSettings.For(mode);
        Bytes largestL3 = Bytes.FromMiB(512);

        // One fp32 array of the Adam probe (master, moments and gradients are each this large), and each memcpy buffer.
        Assert.True(Bytes.OfElements(m.AdamParameters, 4) >= largestL3 / 2, $"{mode}: {m.AdamParameters} parameters");
        Assert.True(m.MemcpySize >= largestL3 / 2, $"{mode}: {m.MemcpySize}");
    }
}

public class ModeSettingsSizingTests
{
    private static readonly Bytes H100VmL3 = Bytes.FromMiB(300);

    [Fact]
    public void Given_a_300_MiB_L3_When_the_default_mode_is_sized_Then_the_adam_state_and_copy_buffers_span_sixteen_caches()
    {
        var sized = ModeSettings.For(CalibrationMode.Default).SizedFor(H100VmL3, Bytes.FromGiB(100));

        // 16 bytes of state per parameter (the bf16 path's master, m, v, gradient and copy): the state is 16 × the L3, where
        // the mode's 64 M parameters (1 GiB) were 3.4 × and ran 1.24× the engine's in-step rate on such a VM.
        Assert.True(Bytes.OfElements(sized.AdamParameters, 16) >= H100VmL3 * ModeSettings.CacheMultiple);
        Assert.True(sized.MemcpySize * 2 >= H100VmL3 * ModeSettings.CacheMultiple);
        Assert.Equal(0, sized.AdamParameters % (1L << 20));
    }

    [Fact]
    public void Given_little_free_memory_When_sized_Then_the_probes_take_at_most_a_quarter_of_it_but_never_less_than_the_mode()
    {
        var mode = ModeSettings.For(CalibrationMode.Default);

        var tight = mode.SizedFor(H100VmL3, Bytes.FromGiB(8));
        Assert.True(Bytes.OfElements(tight.AdamParameters, 16) <= Bytes.FromGiB(2) + Bytes.FromMiB(16));
        Assert.True(tight.AdamParameters > mode.AdamParameters);

        var starved = mode.SizedFor(H100VmL3, Bytes.FromGiB(1));
        Assert.Equal(mode.AdamParameters, starved.AdamParameters);
        Assert.Equal(mode.MemcpySize, starved.MemcpySize);
    }

    [Fact]
    public void Given_an_unknown_or_small_cache_When_sized_Then_the_modes_sizes_stand()
    {
        var mode = ModeSettings.For(CalibrationMode.Quick);

        Assert.Same(mode, mode.SizedFor(null, Bytes.FromGiB(100)));
        var small = mode.SizedFor(Bytes.FromMiB(8), Bytes.FromGiB(100));
        Assert.Equal(mode.AdamParameters, small.AdamParameters);
        Assert.Equal(mode.MemcpySize, small.MemcpySize);
    }
}

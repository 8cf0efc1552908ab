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

using AiOs.Planner.Engine.Native;
using TorchSharp;

namespace AiOs.Planner.Engine.Tests;

public sealed class TorchRuntimeTests
{
    [Fact]
    public void Given_ThisMachine_When_EnsureReady_Then_TorchSharpComputesAMatrixProduct()
    {
        TorchRuntimeReport report = TorchRuntime.EnsureReady();

        using var a = torch.tensor(new float[] { 1, 2, 3, 4 }, 2, 2);
        using var b = torch.tensor(new float[] { 5, 6, 7, 8 }, 2, 2);
        using var c = a.matmul(b);
        Assert.Equal(new float[] { 19, 22, 43, 50 }, c.data<float>().ToArray());
        if (report.NeedsPatch)
            Assert.Contains(report.Patched, p => p.Outcome is WeakPatchOutcome.Patched or WeakPatchOutcome.AlreadyWeak);
    }
}

public sealed class TorchRuntimeDeviceTests
{
    [Theory]
    [InlineData("cpu", TorchSharp.DeviceType.CPU)]
    [InlineData("cuda", TorchSharp.DeviceType.CUDA)]
    [InlineData("cuda:1", TorchSharp.DeviceType.CUDA)]
    public void Given_ADeviceFlag_When_Parsed_Then_ItNamesTheBackend(string flag, TorchSharp.DeviceType expected)
    {
        Assert.Equal(expected, TorchRuntime.DeviceTypeOf(flag));
    }

    [Fact]
    public void Given_TheCpuOnlyLibtorch_When_CudaIsRequested_Then_ItFailsNamingCuda()
    {
        TorchRuntime.EnsureReady();
        if (TorchSharp.torch.cuda.is_available()) return; // a CUDA machine has nothing to refuse

        Exception e = Assert.ThrowsAny<Exception>(() => TorchRuntime.EnsureReady(TorchSharp.DeviceType.CUDA));

        Assert.Contains("CUDA", e.Message, StringComparison.OrdinalIgnoreCase);
    }
}

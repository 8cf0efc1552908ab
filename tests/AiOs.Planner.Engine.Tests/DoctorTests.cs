using AiOs.Planner.Engine.Native;
using AiOs.Planner.Engine.Probes;

namespace AiOs.Planner.Engine.Tests;

public sealed class DoctorTests : IDisposable
{
    /// <summary>A driver library name no machine has: acts out a machine without the NVIDIA driver, GPU or not.</summary>
    private const string NoDriver = "libcuda-absent-for-tests.so.1";

    private readonly string _disk = Directory.CreateTempSubdirectory("aios-doctor-").FullName;

    public void Dispose() => Directory.Delete(_disk, recursive: true);

    private static DoctorCheck Named(DoctorReport report, string name) => Assert.Single(report.Checks, c => c.Name == name);

    [Fact]
    public void Given_NoCudaDriver_When_TheDoctorRuns_Then_CudaIsANotFoundWarningWithTheFixAndTheReportHasNoFailure()
    {
        DoctorReport report = Doctor.Run(new DoctorOptions(_disk, NoDriver));

        DoctorCheck cuda = Named(report, "CUDA driver");
        Assert.Equal(CheckStatus.Warn, cuda.Status);
        Assert.Contains("not found", cuda.Detail);
        Assert.Contains(NoDriver, cuda.Detail);
        Assert.Contains("NVIDIA driver", cuda.Fix);
        Assert.Equal(CheckStatus.Pass, Named(report, "TorchSharp (CPU)").Status);
        Assert.Equal(CheckStatus.Pass, Named(report, ".NET runtime").Status);
        Assert.DoesNotContain(report.Checks, c => c.Name == "CUDA libtorch");
        if (!OperatingSystem.IsLinux()) return;
        Assert.Equal(CheckStatus.Pass, Named(report, "O_DIRECT").Status);
        Assert.False(report.Failed);
    }

    [Fact]
    public void Given_ATmpfsOffloadFolder_When_TheDoctorRuns_Then_ODirectFailsWithTheFix()
    {
        if (!Directory.Exists("/dev/shm")) return; // not Linux: no tmpfs to try
        string shm = Path.Combine("/dev/shm", $"aios-doctor-{Guid.NewGuid():N}");
        try
        {
            DoctorReport report = Doctor.Run(new DoctorOptions(shm, NoDriver));

            DoctorCheck direct = Named(report, "O_DIRECT");
            Assert.Equal(CheckStatus.Fail, direct.Status);
            Assert.Contains("tmpfs", direct.Detail);
            Assert.Contains("--nvme-path", direct.Fix);
            Assert.True(report.Failed);
        }
        finally
        {
            if (Directory.Exists(shm)) Directory.Delete(shm, recursive: true);
        }
    }

    [Fact]
    public void Given_TorchSharpsEmptyTrace_When_TheCudaErrorIsWritten_Then_ItNamesWhatWasLoadedTheDriverAndTheFix()
    {
        TorchRuntime.EnsureReady();

        string message = TorchRuntime.CudaLoadError("Torch device type CUDA did not initialise on the current machine. Trace from LoadNativeBackend:\n");

        Assert.DoesNotContain("Trace from LoadNativeBackend", message);
        Assert.Contains("did not initialise on the current machine", message);
        Assert.Contains("Loaded libtorch: ", message);
        Assert.Contains("libtorch_cpu", message);
        Assert.Contains("LD_LIBRARY_PATH", message);
        Assert.Contains("torch.__file__", message);
        Assert.Contains("aios doctor", message);
    }

    [Fact]
    public void Given_TheCpuOnlyLibtorch_When_CudaIsRequested_Then_TheErrorIsCompleteRatherThanAnEmptyTrace()
    {
        TorchRuntime.EnsureReady();
        if (TorchSharp.torch.cuda.is_available()) return; // a CUDA machine has nothing to refuse

        var e = Assert.Throws<InvalidOperationException>(() => TorchRuntime.EnsureReady(TorchSharp.DeviceType.CUDA));

        Assert.False(e.Message.TrimEnd().EndsWith("Trace from LoadNativeBackend:", StringComparison.Ordinal), e.Message);
        Assert.Contains("Loaded libtorch: ", e.Message);
        Assert.Contains(TorchRuntime.CudaFix, e.Message);
    }
}

using System.Runtime.InteropServices;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Storage;
using AiOs.Planner.Units;
using TorchSharp;

namespace AiOs.Planner.Engine.Probes;

/// <summary>How a check of <see cref="Doctor"/> came out.</summary>
public enum CheckStatus
{
    /// <summary>Works.</summary>
    Pass,
    /// <summary>Works with limits, or something optional is missing (CUDA on a CPU-only machine).</summary>
    Warn,
    /// <summary>Training as asked would fail or misbehave until this is fixed.</summary>
    Fail,
}

/// <summary>One line of <c>aios doctor</c>: what was checked, what was found, and (unless it passed) what to do.</summary>
/// <param name="Name">What was checked, for example "CUDA driver".</param>
/// <param name="Status">Pass, warn or fail.</param>
/// <param name="Detail">What was found.</param>
/// <param name="Fix">What to do about a warning or failure; null when it passed.</param>
public sealed record DoctorCheck(string Name, CheckStatus Status, string Detail, string? Fix = null);

/// <summary>Every check of one <see cref="Doctor.Run"/>, in order.</summary>
public sealed record DoctorReport(string OffloadPath, IReadOnlyList<DoctorCheck> Checks)
{
    /// <summary>True when any check failed.</summary>
    public bool Failed => Checks.Any(c => c.Status == CheckStatus.Fail);
}

/// <summary>What <see cref="Doctor.Run"/> looks at.</summary>
/// <param name="OffloadPath">The folder for swap files (O_DIRECT and free space are checked there; created if missing).</param>
/// <param name="CudaDriverLibrary">The CUDA driver library to load (tests name an absent one to act out a machine without a driver).</param>
public sealed record DoctorOptions(string OffloadPath, string CudaDriverLibrary = "libcuda.so.1");

/// <summary>
/// Checks that this machine can run the engine: the .NET runtime, TorchSharp's native library, the CUDA driver and a
/// CUDA libtorch, NVRTC, O_DIRECT and free space on the offload folder, and free RAM. A missing GPU is a warning, never a
/// crash: CPU training works without one.
/// </summary>
public static class Doctor
{
    /// <summary>Below this much free RAM a warning is given: the smallest runs still fit, but not much else.</summary>
    public static readonly Bytes LowRam = Bytes.FromGiB(4);

    /// <summary>Below this much free space on the offload folder a warning is given; what a model needs is check-nvme's answer.</summary>
    public static readonly Bytes LowDisk = Bytes.FromGiB(10);

    /// <summary>Runs every check; never throws for what it finds.</summary>
    public static DoctorReport Run(DoctorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var checks = new List<DoctorCheck> { DotNet(), TorchCpu() };
        checks.AddRange(Cuda(options.CudaDriverLibrary));
        NvmeCheckResult nvme = NvmeCheck.Check(options.OffloadPath, []);
        checks.Add(DirectIo(nvme));
        checks.Add(FreeRam(HostMemoryEstimate.Available()));
        checks.Add(FreeDisk(nvme));
        return new DoctorReport(nvme.Path, checks);
    }

    private static DoctorCheck DotNet()
    {
        string what = $"{RuntimeInformation.FrameworkDescription} ({RuntimeInformation.RuntimeIdentifier})";
        return System.Environment.Version.Major >= 10
            ? new(".NET runtime", CheckStatus.Pass, what)
            : new(".NET runtime", CheckStatus.Fail, what, "Install the .NET 10 runtime (https://dot.net) and run aios with it.");
    }

    private static DoctorCheck TorchCpu()
    {
        try
        {
            TorchRuntimeReport report = TorchRuntime.EnsureReady();
            using var a = torch.ones(2, 2);
            float sum = a.sum().item<float>();
            if (sum != 4) return new("TorchSharp (CPU)", CheckStatus.Fail, $"loads, but 1+1+1+1 gave {sum}", "Reinstall aios; the native libraries are damaged.");
            string libtorch = TorchRuntime.LoadedLibTorch() is { Count: > 0 } l ? string.Join(", ", l) : "libtorch";
            string patch = report.NeedsPatch ? $"; {TorchRuntime.MissingVersion} requirement marked weak (Debian 12's libstdc++)" : "";
            return new("TorchSharp (CPU)", CheckStatus.Pass, $"loads {libtorch}{patch}");
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // TorchRuntime's own message carries TorchSharp's; a bare type-initialiser failure says nothing by itself.
            string why = e is TypeInitializationException ? e.GetBaseException().Message : e.Message;
            return new("TorchSharp (CPU)", CheckStatus.Fail, $"does not load: {why.Trim()}",
                TorchRuntime.NativeFix + " On Debian 12, make that folder writable for one run so the GLIBCXX requirement can be marked weak.");
        }
    }

    private static IEnumerable<DoctorCheck> Cuda(string driverLibrary)
    {
        var (info, problem) = CudaDriver.Probe(driverLibrary);
        if (info is null)
        {
            // No driver, or a driver without a device: a CPU-only machine. A driver that fails otherwise is broken.
            bool absent = problem!.EndsWith("could not be loaded", StringComparison.Ordinal) || problem.Contains("no CUDA-capable device", StringComparison.Ordinal)
                || problem.Contains("sees no device", StringComparison.Ordinal);
            yield return new("CUDA driver", absent ? CheckStatus.Warn : CheckStatus.Fail,
                $"{(absent ? "not found" : "fails")} ({problem}); CPU training works, --device cuda does not (CUDA libtorch not checked)",
                "On a machine with an NVIDIA GPU, install the NVIDIA driver (nvidia-smi must list the GPU); then see the CUDA setup steps in docs/engine.md.");
            yield return Nvrtc(driverPresent: false);
            yield break;
        }
        yield return new("CUDA driver", CheckStatus.Pass,
            $"CUDA {info.DriverVersion}; {info.Devices} device(s); device 0: {info.Name}, {new Bytes(info.TotalMemory)}");
        DoctorCheck libtorch;
        try
        {
            TorchRuntime.EnsureReady(DeviceType.CUDA);
            libtorch = torch.cuda.is_available()
                ? new("CUDA libtorch", CheckStatus.Pass, $"{string.Join(", ", TorchRuntime.LoadedLibTorch())}; {torch.cuda.device_count()} device(s)")
                : new("CUDA libtorch", CheckStatus.Fail, "initialised but torch.cuda.is_available() is false", TorchRuntime.CudaFix);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // When the CPU backend did not load either, the CPU line already says why; this one says only that.
            bool noTorch = e is TypeInitializationException || e.Message.StartsWith("TorchSharp's native library did not load", StringComparison.Ordinal);
            libtorch = new("CUDA libtorch", CheckStatus.Fail,
                noTorch ? "not checked: TorchSharp's native library does not load (see TorchSharp (CPU))" : e.Message, TorchRuntime.CudaFix);
        }
        yield return libtorch;
        yield return Nvrtc(driverPresent: true);
    }

    private static DoctorCheck Nvrtc(bool driverPresent)
    {
        if (Native.Nvrtc.IsAvailable) return new("NVRTC", CheckStatus.Pass, "found (the fused GPU AdamW and the fused head's cross-entropy kernel can be compiled)");
        return new("NVRTC", CheckStatus.Warn,
            driverPresent ? "not found: the fused GPU AdamW and the fused head's kernel cannot be compiled (both fall back to slower tensor ops)" : "not found (only the GPU optimizer and head kernels need it)",
            "Install PyTorch's CUDA wheels (they bring nvidia/cuda_nvrtc/lib/libnvrtc.so.*) with torch/lib on LD_LIBRARY_PATH, or set AIOS_NVRTC to the path of libnvrtc.so.");
    }

    private static DoctorCheck DirectIo(NvmeCheckResult nvme)
    {
        const string name = "O_DIRECT";
        if (nvme.Facts is not { } f)
            return new(name, CheckStatus.Fail, string.Join(" ", nvme.Problems), "Pass --nvme-path with a folder you can write on a local drive.");
        if (StorageInspector.IsMemory(f.FileSystem) || !f.DirectIo)
            return new(name, CheckStatus.Fail,
                $"does not work on {nvme.Path} ({f.FileSystem}){(nvme.Problems.Count > 0 ? ": " + string.Join(" ", nvme.Problems) : "")}",
                "Put the offload folder on a local NVMe drive with ext4 or xfs (--nvme-path DIR, and --nvme-offload-path for training); " +
                "tmpfs (/dev/shm, /tmp on some systems) lives in RAM and refuses O_DIRECT. train --buffered-swap works without O_DIRECT, through the page cache.");
        return new(name, CheckStatus.Pass, $"works on {nvme.Path} ({f.FileSystem}, {f.BlockDevice ?? f.Device})");
    }

    private static DoctorCheck FreeRam(Bytes? available)
    {
        if (available is not { } free)
            return new("free RAM", CheckStatus.Warn, "MemAvailable could not be read from /proc/meminfo", "Run on Linux; the engine checks host memory from /proc/meminfo.");
        return free < LowRam
            ? new("free RAM", CheckStatus.Warn, $"{free} available (MemAvailable)", "Close other programs, or offload parameters and optimizer to NVMe (--nvme-offload-path).")
            : new("free RAM", CheckStatus.Pass, $"{free} available (MemAvailable)");
    }

    private static DoctorCheck FreeDisk(NvmeCheckResult nvme)
    {
        if (nvme.Facts is not { } f) return new("free disk", CheckStatus.Fail, $"{nvme.Path} could not be inspected", "Pass --nvme-path with a folder you can write.");
        string what = $"{f.Free} free of {f.Total} on {f.MountPoint}";
        return f.Free < LowDisk
            ? new("free disk", CheckStatus.Warn, what, $"Free space or pick a bigger drive; `aios check-nvme {nvme.Path} --model M --hardware H` says what a model needs.")
            : new("free disk", CheckStatus.Pass, what);
    }
}

using System.Runtime.InteropServices;
using TorchSharp;

namespace AiOs.Planner.Engine.Native;

/// <summary>What <see cref="TorchRuntime.EnsureReady()"/> decided, for logs and tests.</summary>
/// <param name="SystemLibStdCxx">The libstdc++ the process loads, when found.</param>
/// <param name="NeedsPatch">True when that libstdc++ lacks the version TorchSharp's native library asks for.</param>
/// <param name="Patched">Each native library looked at and what was done to it.</param>
public sealed record TorchRuntimeReport(string? SystemLibStdCxx, bool NeedsPatch, IReadOnlyList<(string Path, WeakPatchOutcome Outcome)> Patched);

/// <summary>
/// Makes TorchSharp loadable on this machine before its first use. TorchSharp 0.107's
/// <c>libLibTorchSharp.so</c> requires <c>GLIBCXX_3.4.32</c> (GCC 13), which Debian 12's libstdc++ lacks;
/// the only symbol behind it has no relocation, so marking the requirement weak is enough
/// (see PLATFORM.md). Where the system libstdc++ has the version, nothing is touched.
/// </summary>
public static class TorchRuntime
{
    /// <summary>The version requirement that fails on GCC 12 systems.</summary>
    public const string MissingVersion = "GLIBCXX_3.4.32";

    private const string LibStdCxx = "libstdc++.so.6";
    private const string NativeName = "libLibTorchSharp.so";

    private static readonly Lazy<TorchRuntimeReport> Ready = new(Prepare, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Patches the native library that will load, if needed, then loads TorchSharp's CPU backend. Safe to call often.</summary>
    public static TorchRuntimeReport EnsureReady() => Ready.Value;

    /// <summary>
    /// As <see cref="EnsureReady()"/>, then initialises <paramref name="deviceType"/>'s backend; for CUDA this
    /// fails with TorchSharp's explanation when no usable CUDA libtorch is loaded.
    /// </summary>
    public static TorchRuntimeReport EnsureReady(DeviceType deviceType)
    {
        TorchRuntimeReport report = Ready.Value;
        if (deviceType == DeviceType.CPU) return report;
        try
        {
            torch.InitializeDeviceType(deviceType);
        }
        catch (Exception e) when (e is InvalidOperationException or NotSupportedException or DllNotFoundException or EntryPointNotFoundException)
        {
            // TorchSharp's own message ends "Trace from LoadNativeBackend:" with an empty trace once the CPU backend is
            // loaded; say what was found instead, and how to fix it.
            throw new InvalidOperationException(CudaLoadError(e.Message), e);
        }
        return report;
    }

    /// <summary>The command that prints PyTorch's libtorch folder (its <c>torch/lib</c>), for messages and docs.</summary>
    public const string TorchLibCommand = "python3 -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),\"lib\"))'";

    /// <summary>The steps that make TorchSharp load PyTorch's CUDA libtorch (docs/engine.md, "CUDA setup").</summary>
    public const string CudaFix =
        "Install PyTorch with CUDA (pip install torch) and point the loader at its libraries before starting aios: " +
        "export LD_LIBRARY_PATH=\"$(" + TorchLibCommand + "):$LD_LIBRARY_PATH\"; " +
        "then remove the CPU-only libtorch*.so, libc10*.so and libgomp*.so files that the build puts beside aios " +
        "(under runtimes/linux-x64/native/ and cpu/), which would otherwise be loaded first. `aios doctor` checks each step; " +
        "see docs/engine.md, \"CUDA setup\".";

    /// <summary>A complete CUDA load error: TorchSharp's words, the libtorch this process loaded, the driver, LD_LIBRARY_PATH, and <see cref="CudaFix"/>.</summary>
    internal static string CudaLoadError(string torchSharpMessage)
    {
        // Drop TorchSharp's empty trace rather than print a heading with nothing under it.
        string said = torchSharpMessage.Trim();
        int trace = said.IndexOf("Trace from LoadNativeBackend:", StringComparison.Ordinal);
        if (trace >= 0 && said[(trace + "Trace from LoadNativeBackend:".Length)..].Trim().Length == 0) said = said[..trace].TrimEnd();
        said = said.TrimEnd('.');
        IReadOnlyList<string> libtorch = LoadedLibTorch();
        string loaded = libtorch.Count == 0 ? "none" : string.Join(", ", libtorch);
        bool cudaBuild = libtorch.Any(p => Path.GetFileName(p).StartsWith("libtorch_cuda", StringComparison.Ordinal));
        bool driver = NativeLibrary.TryLoad("libcuda.so.1", out nint handle);
        if (driver) NativeLibrary.Free(handle);
        string ldPath = System.Environment.GetEnvironmentVariable("LD_LIBRARY_PATH") is { Length: > 0 } v ? v : "(not set)";
        string why = !driver
            ? "The NVIDIA driver's libcuda.so.1 was not found: this machine has no NVIDIA GPU or its driver is not installed (nvidia-smi should list the GPU)."
            : cudaBuild
                ? "A CUDA libtorch is loaded but did not initialise: check that its CUDA version suits the driver (nvidia-smi shows the highest it supports)."
                : "The libtorch loaded is the CPU-only build (no libtorch_cuda.so in this process).";
        return $"CUDA did not initialise ({said}). {why} Loaded libtorch: {loaded}. LD_LIBRARY_PATH: {ldPath}. {CudaFix}";
    }

    /// <summary>The libtorch libraries (<c>libtorch_cpu.so</c>, <c>libtorch_cuda.so</c>, …) mapped into this process, by path.</summary>
    public static IReadOnlyList<string> LoadedLibTorch()
    {
        if (!File.Exists("/proc/self/maps")) return [];
        var found = new SortedSet<string>(StringComparer.Ordinal);
        foreach (string line in File.ReadLines("/proc/self/maps"))
        {
            int slash = line.IndexOf('/', StringComparison.Ordinal);
            if (slash < 0) continue;
            string path = line[slash..].Trim();
            string file = Path.GetFileName(path);
            if (file.StartsWith("libtorch", StringComparison.Ordinal) && !file.StartsWith("libtorchsharp", StringComparison.OrdinalIgnoreCase))
                found.Add(path);
        }
        return [.. found];
    }

    /// <summary>The device type a <c>--device</c> value names (<c>cpu</c> or <c>cuda</c>, optionally <c>cuda:N</c>).</summary>
    public static DeviceType DeviceTypeOf(string device) =>
        device.StartsWith("cuda", StringComparison.OrdinalIgnoreCase) ? DeviceType.CUDA : DeviceType.CPU;

    private static TorchRuntimeReport Prepare()
    {
        HostHeap.Configure();
        if (!OperatingSystem.IsLinux())
        {
            InitializeCpu();
            return new TorchRuntimeReport(null, false, []);
        }
        string? stdcxx = LoadedLibStdCxx();
        bool needsPatch = stdcxx is not null && !ElfVersionInfo.Read(stdcxx).Definitions.Contains(MissingVersion);
        var patched = new List<(string, WeakPatchOutcome)>();
        if (needsPatch)
        {
            foreach (string candidate in NativeCandidates())
            {
                try
                {
                    patched.Add((candidate, ElfVersionPatcher.MarkWeak(candidate, LibStdCxx, MissingVersion)));
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new InvalidOperationException(
                        $"TorchSharp's native library {candidate} requires {MissingVersion}, which this system's {stdcxx} lacks, " +
                        $"and marking that requirement weak failed ({e.Message}). Make the file and its folder writable for one run, " +
                        "or use a system with GCC 13's libstdc++ (Debian 13, Ubuntu 24.04).", e);
                }
            }
        }
        InitializeCpu();
        return new TorchRuntimeReport(stdcxx, needsPatch, patched);
    }

    /// <summary>
    /// Loads TorchSharp's CPU backend, turning its type-initialiser failure (which callers rarely catch, so the process
    /// aborted) into an <see cref="InvalidOperationException"/> that says where libtorch was looked for and how to fix it.
    /// </summary>
    private static void InitializeCpu()
    {
        try
        {
            torch.InitializeDeviceType(DeviceType.CPU);
        }
        catch (Exception e) when (e is TypeInitializationException or DllNotFoundException or NotSupportedException or InvalidOperationException)
        {
            string ldPath = System.Environment.GetEnvironmentVariable("LD_LIBRARY_PATH") is { Length: > 0 } v ? v : "(not set)";
            throw new InvalidOperationException(
                $"TorchSharp's native library did not load. LD_LIBRARY_PATH: {ldPath}. {NativeFix} TorchSharp says: {e.GetBaseException().Message.Trim()}", e);
        }
    }

    /// <summary>How to make TorchSharp's native library load, for a CPU build and for a GPU machine set up for PyTorch's libtorch.</summary>
    public const string NativeFix =
        "Run aios from the folder it was built or published into (runtimes/linux-x64/native/ there holds libLibTorchSharp.so and the CPU libtorch); " +
        "where that CPU libtorch was removed to use PyTorch's CUDA build, point LD_LIBRARY_PATH at PyTorch's torch/lib: " +
        "export LD_LIBRARY_PATH=\"$(" + TorchLibCommand + "):$LD_LIBRARY_PATH\" (docs/engine.md, \"CUDA setup\").";

    /// <summary>
    /// Every copy of the native library the loader could pick: the host's native search directories
    /// (from the app's deps.json, in order) and the <c>cpu/</c> folder TorchSharp consolidates natives
    /// into after a failed first load. Patching each existing copy covers whichever one loads.
    /// </summary>
    internal static IEnumerable<string> NativeCandidates()
    {
        var dirs = new List<string>();
        if (AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") is string searchDirs)
            dirs.AddRange(searchDirs.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
        dirs.Add(AppContext.BaseDirectory);
        dirs.Add(Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native"));
        string? torchSharpDir = Path.GetDirectoryName(typeof(torch).Assembly.Location);
        if (!string.IsNullOrEmpty(torchSharpDir)) dirs.Add(Path.Combine(torchSharpDir, "cpu"));
        return dirs.Select(d => Path.GetFullPath(Path.Combine(d, NativeName)))
            .Distinct(StringComparer.Ordinal)
            .Where(File.Exists);
    }

    /// <summary>The path of the libstdc++ this process loads (loading it if the host has not).</summary>
    internal static string? LoadedLibStdCxx()
    {
        if (!NativeLibrary.TryLoad(LibStdCxx, out _)) return null;
        foreach (string line in File.ReadLines("/proc/self/maps"))
        {
            int slash = line.IndexOf('/', StringComparison.Ordinal);
            if (slash >= 0 && Path.GetFileName(line[slash..]).StartsWith("libstdc++.so", StringComparison.Ordinal))
                return line[slash..].Trim();
        }
        return null;
    }
}

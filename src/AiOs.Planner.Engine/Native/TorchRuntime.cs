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
        if (deviceType != DeviceType.CPU) torch.InitializeDeviceType(deviceType);
        return report;
    }

    /// <summary>The device type a <c>--device</c> value names (<c>cpu</c> or <c>cuda</c>, optionally <c>cuda:N</c>).</summary>
    public static DeviceType DeviceTypeOf(string device) =>
        device.StartsWith("cuda", StringComparison.OrdinalIgnoreCase) ? DeviceType.CUDA : DeviceType.CPU;

    private static TorchRuntimeReport Prepare()
    {
        HostHeap.Configure();
        if (!OperatingSystem.IsLinux())
        {
            torch.InitializeDeviceType(DeviceType.CPU);
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
        torch.InitializeDeviceType(DeviceType.CPU);
        return new TorchRuntimeReport(stdcxx, needsPatch, patched);
    }

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

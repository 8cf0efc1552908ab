using System.Runtime.InteropServices;
using System.Text;

namespace AiOs.Planner.Engine.Native;

/// <summary>What the CUDA driver reports before any context exists: its version and the first device.</summary>
/// <param name="DriverVersion">The CUDA version the driver supports, as "13.0".</param>
/// <param name="Devices">Devices the driver sees.</param>
/// <param name="Name">Device 0's name.</param>
/// <param name="TotalMemory">Device 0's memory in bytes.</param>
public sealed record CudaDriverInfo(string DriverVersion, int Devices, string Name, long TotalMemory);

/// <summary>The driver calls <c>aios doctor</c> makes: no context, no TorchSharp, so a machine without a driver is only reported.</summary>
internal static partial class CudaDriver
{
    /// <summary>
    /// Initialises the driver in <paramref name="library"/> and reads device 0, or says why not: the library cannot be loaded,
    /// or a call failed (its name and CUDA error code). Never throws for a missing or failing driver.
    /// </summary>
    public static (CudaDriverInfo? Info, string? Problem) Probe(string library = Library)
    {
        if (!NativeLibrary.TryLoad(library, out nint lib)) return (null, $"{library} could not be loaded");
        // The driver stays loaded: TorchSharp and the engine use it from the same process.
        unsafe
        {
            var init = (delegate* unmanaged<uint, int>)NativeLibrary.GetExport(lib, "cuInit");
            var version = (delegate* unmanaged<int*, int>)NativeLibrary.GetExport(lib, "cuDriverGetVersion");
            var count = (delegate* unmanaged<int*, int>)NativeLibrary.GetExport(lib, "cuDeviceGetCount");
            var get = (delegate* unmanaged<int*, int, int>)NativeLibrary.GetExport(lib, "cuDeviceGet");
            var name = (delegate* unmanaged<byte*, int, int, int>)NativeLibrary.GetExport(lib, "cuDeviceGetName");
            var memory = (delegate* unmanaged<nuint*, int, int>)NativeLibrary.GetExport(lib, "cuDeviceTotalMem_v2");
            int result = init(0);
            if (result != Success) return (null, $"cuInit failed with CUDA error {result}" + (result == 100 ? " (no CUDA-capable device)" : ""));
            int v, n, device;
            if ((result = version(&v)) != Success) return (null, $"cuDriverGetVersion failed with CUDA error {result}");
            if ((result = count(&n)) != Success || n == 0) return (null, $"the driver (CUDA {v / 1000}.{v % 1000 / 10}) sees no device");
            if ((result = get(&device, 0)) != Success) return (null, $"cuDeviceGet(0) failed with CUDA error {result}");
            byte* buffer = stackalloc byte[256];
            if ((result = name(buffer, 256, device)) != Success) return (null, $"cuDeviceGetName failed with CUDA error {result}");
            nuint bytes;
            if ((result = memory(&bytes, device)) != Success) return (null, $"cuDeviceTotalMem failed with CUDA error {result}");
            string deviceName = Encoding.UTF8.GetString(MemoryMarshal.CreateReadOnlySpanFromNullTerminated(buffer));
            return (new CudaDriverInfo($"{v / 1000}.{v % 1000 / 10}", n, deviceName, (long)bytes), null);
        }
    }
}

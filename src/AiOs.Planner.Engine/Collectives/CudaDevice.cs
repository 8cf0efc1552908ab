using System.Runtime.InteropServices;

namespace AiOs.Planner.Engine.Collectives;

/// <summary>
/// Makes a GPU's primary context current on the calling thread (cuDevicePrimaryCtxRetain + cuCtxSetCurrent), so that
/// NCCL — which asks the CUDA runtime for the current device — builds the rank's communicator on cuda:LOCAL_RANK and
/// not on whichever device a TorchSharp device guard last left current (often 0, which NCCL reports as a duplicate GPU).
/// </summary>
internal static partial class CudaDevice
{
    private const string Library = "libcuda.so.1";

    /// <summary>Makes device <paramref name="ordinal"/>'s primary context current on this thread; returns it (for <see cref="SetCurrent"/> on other threads).</summary>
    public static nint MakeCurrent(int ordinal)
    {
        Check(Init(0), "cuInit");
        Check(DeviceGet(out int device, ordinal), $"cuDeviceGet({ordinal})");
        Check(PrimaryCtxRetain(out nint context, device), "cuDevicePrimaryCtxRetain");
        Check(CtxSetCurrent(context), "cuCtxSetCurrent");
        return context;
    }

    /// <summary>Makes <paramref name="context"/> (from <see cref="MakeCurrent"/>) current on this thread: the engine's worker threads call collectives too.</summary>
    public static void SetCurrent(nint context) => Check(CtxSetCurrent(context), "cuCtxSetCurrent");

    private static void Check(int result, string call)
    {
        if (result != 0) throw new InvalidOperationException($"CUDA driver call {call} failed with error {result}: check that the GPU exists and is visible (nvidia-smi, CUDA_VISIBLE_DEVICES).");
    }

    [LibraryImport(Library, EntryPoint = "cuInit")]
    private static partial int Init(uint flags);

    [LibraryImport(Library, EntryPoint = "cuDeviceGet")]
    private static partial int DeviceGet(out int device, int ordinal);

    [LibraryImport(Library, EntryPoint = "cuDevicePrimaryCtxRetain")]
    private static partial int PrimaryCtxRetain(out nint context, int device);

    [LibraryImport(Library, EntryPoint = "cuCtxSetCurrent")]
    private static partial int CtxSetCurrent(nint context);
}

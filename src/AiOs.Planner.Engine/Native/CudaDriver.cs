using System.Runtime.InteropServices;

namespace AiOs.Planner.Engine.Native;

/// <summary>
/// The few CUDA driver API calls TorchSharp 0.107 does not offer, from <c>libcuda.so.1</c> (present wherever
/// the NVIDIA driver is): device memory figures, raw allocations (the memory-limit ballast) and launching a
/// kernel compiled at run time. Calls run on the thread that created TorchSharp's CUDA tensors, where
/// the device's primary context is current, or on a thread that made that context current first
/// (<see cref="CurrentContext"/>, <see cref="MakeCurrent"/>: the step program's copy and host workers). Kernels go to the legacy default stream (0), which is where
/// TorchSharp queues its own work, so they are ordered with it without events.
/// </summary>
internal static partial class CudaDriver
{
    private const string Library = "libcuda.so.1";

    /// <summary>CUDA_SUCCESS.</summary>
    private const int Success = 0;

    /// <summary>CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, …_COMPUTE_CAPABILITY_MAJOR / _MINOR.</summary>
    private const int AttrMultiprocessors = 16, AttrMajor = 75, AttrMinor = 76;

    /// <summary>Free and total memory of the current context's device, in bytes.</summary>
    public static (long Free, long Total) MemoryInfo()
    {
        Check(MemGetInfo(out nuint free, out nuint total), "cuMemGetInfo");
        return ((long)free, (long)total);
    }

    /// <summary>Allocates <paramref name="bytes"/> of device memory outside PyTorch's caching allocator.</summary>
    public static nint Allocate(long bytes)
    {
        Check(MemAlloc(out nint pointer, (nuint)bytes), "cuMemAlloc");
        return pointer;
    }

    /// <summary>Frees an <see cref="Allocate"/>d block.</summary>
    public static void Free(nint pointer) => Check(MemFree(pointer), "cuMemFree");

    /// <summary>The current device's compute capability (major, minor) and number of multiprocessors.</summary>
    public static (int Major, int Minor, int Multiprocessors) DeviceInfo()
    {
        Check(Init(0), "cuInit");
        Check(CtxGetDevice(out int device), "cuCtxGetDevice (is a CUDA tensor created on this thread?)");
        Check(DeviceGetAttribute(out int major, AttrMajor, device), "cuDeviceGetAttribute");
        Check(DeviceGetAttribute(out int minor, AttrMinor, device), "cuDeviceGetAttribute");
        Check(DeviceGetAttribute(out int sms, AttrMultiprocessors, device), "cuDeviceGetAttribute");
        return (major, minor, sms);
    }

    /// <summary>Loads PTX or a cubin into the current context and returns the named kernel.</summary>
    public static nint LoadKernel(byte[] image, string name)
    {
        Check(ModuleLoadData(out nint module, image), "cuModuleLoadData");
        Check(ModuleGetFunction(out nint function, module, name), $"cuModuleGetFunction({name})");
        return function;
    }

    /// <summary>Address of a tensor's first element (its storage plus offset), from TorchSharp's native library.</summary>
    public static nint DataOf(TorchSharp.torch.Tensor t) => TensorData(t.Handle);

    [LibraryImport("LibTorchSharp", EntryPoint = "THSTensor_data")]
    private static partial nint TensorData(nint tensor);

    /// <summary>Queues <paramref name="function"/> on the default stream; <paramref name="arguments"/> points at one pointer per kernel parameter.</summary>
    public static unsafe void Launch(nint function, int blocks, int threads, void** arguments) =>
        Check(LaunchKernel(function, (uint)blocks, 1, 1, (uint)threads, 1, 1, 0, 0, arguments, null), "cuLaunchKernel");

    /// <summary>A stream that does not synchronise with the legacy default stream (CU_STREAM_NON_BLOCKING), so its copies overlap compute.</summary>
    public static nint CreateCopyStream()
    {
        Check(Init(0), "cuInit");
        Check(StreamCreate(out nint stream, 1), "cuStreamCreate");
        return stream;
    }

    /// <summary>CU_EVENT_BLOCKING_SYNC and CU_EVENT_DISABLE_TIMING.</summary>
    private const uint EventBlockingSync = 1, EventDisableTiming = 2;

    /// <summary>
    /// Whether a host thread that waits for an event (<see cref="Synchronize"/>) sleeps until the device reaches it
    /// (CU_EVENT_BLOCKING_SYNC) rather than spin on a core. A context made with the default scheduling (libtorch's: one
    /// context, more cores than contexts) spins, so each waiting worker, the CPU update's server waiting for a unit's
    /// gradients and the download worker settling its oldest copy, held a core at 100% beside CPU Adam's threads and the
    /// launching thread, which then lost its core for time slices: the suspect for the offloaded backward running 2–5×
    /// its time alone beside the update while the in-step probe (no waits) read 1.07. A sleeping wait wakes some
    /// microseconds late (more on a loaded host; not measured yet), against copies of milliseconds. The span clock's timing
    /// events keep spinning (<see cref="CreateTimingEvent"/>). <c>AIOS_SPIN_WAIT=1</c> restores spinning (a GPU A/B).
    /// </summary>
    internal static readonly bool SleepingWaits = Environment.GetEnvironmentVariable("AIOS_SPIN_WAIT") != "1";

    /// <summary>An event without timing (CU_EVENT_DISABLE_TIMING), for ordering; a host that waits for it sleeps (<see cref="SleepingWaits"/>).</summary>
    public static nint CreateEvent()
    {
        Check(EventCreate(out nint e, EventDisableTiming | (SleepingWaits ? EventBlockingSync : 0)), "cuEventCreate");
        return e;
    }

    /// <summary>
    /// An event that records when the device reaches it (CU_EVENT_DEFAULT), for <see cref="ElapsedMilliseconds"/>. A host
    /// wait on it spins: the span clock takes the moment its anchor's wait returns as the anchor's device time, which a
    /// sleeping wait would make late by the thread's wake-up, and only the launching thread, on its own core, waits for it.
    /// </summary>
    public static nint CreateTimingEvent()
    {
        Check(EventCreate(out nint e, 0), "cuEventCreate");
        return e;
    }

    /// <summary>Device time from <paramref name="start"/> to <paramref name="end"/> in milliseconds (about 0.5 µs resolution); both must have completed.</summary>
    public static float ElapsedMilliseconds(nint start, nint end)
    {
        Check(EventElapsedTime(out float ms, start, end), "cuEventElapsedTime");
        return ms;
    }

    /// <summary>Marks the point in <paramref name="stream"/> (0: the default stream) that <paramref name="e"/> completes at.</summary>
    public static void Record(nint e, nint stream) => Check(EventRecord(e, stream), "cuEventRecord");

    /// <summary>Makes later work on <paramref name="stream"/> (0: the default stream) wait for <paramref name="e"/>; the host does not wait.</summary>
    public static void Wait(nint stream, nint e) => Check(StreamWaitEvent(stream, e, 0), "cuStreamWaitEvent");

    /// <summary>Blocks the host until <paramref name="e"/> has completed.</summary>
    public static void Synchronize(nint e) => Check(EventSynchronize(e), "cuEventSynchronize");

    /// <summary>Queues a host→device copy of <paramref name="bytes"/> from pinned host memory on <paramref name="stream"/>.</summary>
    public static void CopyToDeviceAsync(nint device, nint host, long bytes, nint stream) =>
        Check(MemcpyHtoDAsync((ulong)device, host, (nuint)bytes, stream), "cuMemcpyHtoDAsync");

    /// <summary>Queues a device→host copy of <paramref name="bytes"/> into pinned host memory on <paramref name="stream"/>.</summary>
    public static void CopyToHostAsync(nint host, nint device, long bytes, nint stream) =>
        Check(MemcpyDtoHAsync(host, (ulong)device, (nuint)bytes, stream), "cuMemcpyDtoHAsync");

    /// <summary>Page-locks <paramref name="bytes"/> of host memory at <paramref name="host"/> for every context (CU_MEMHOSTREGISTER_PORTABLE), so copies from and to it are DMA transfers.</summary>
    public static void Register(nint host, long bytes) => Check(MemHostRegister(host, (nuint)bytes, 1), "cuMemHostRegister");

    /// <summary>Undoes <see cref="Register"/>.</summary>
    public static void Unregister(nint host) => Check(MemHostUnregister(host), "cuMemHostUnregister");

    /// <summary>The CUDA context current on the calling thread (0: none).</summary>
    public static nint CurrentContext()
    {
        Check(CtxGetCurrent(out nint context), "cuCtxGetCurrent");
        return context;
    }

    /// <summary>Makes <paramref name="context"/> current on the calling thread; driver calls from a worker thread need it (the runtime binds it only on threads that call it).</summary>
    public static void MakeCurrent(nint context) => Check(CtxSetCurrent(context), "cuCtxSetCurrent");

    /// <summary>Destroys a stream or an event made here (0 is ignored).</summary>
    public static void Destroy(IEnumerable<nint> streams, IEnumerable<nint> events)
    {
        foreach (nint e in events) if (e != 0) _ = EventDestroy(e);
        foreach (nint s in streams) if (s != 0) _ = StreamDestroy(s);
    }

    /// <summary>Starts (<paramref name="on"/>) or stops the collection of a profiler attached with profiling off at start (<c>ncu --profile-from-start off</c>); without one attached it does nothing.</summary>
    public static void Profile(bool on) => Check(on ? ProfilerStart() : ProfilerStop(), on ? "cuProfilerStart" : "cuProfilerStop");

    private static void Check(int result, string call)
    {
        if (result != Success) throw new InvalidOperationException($"CUDA driver call {call} failed with error {result}.");
    }

    [LibraryImport(Library, EntryPoint = "cuProfilerStart")]
    private static partial int ProfilerStart();

    [LibraryImport(Library, EntryPoint = "cuProfilerStop")]
    private static partial int ProfilerStop();

    [LibraryImport(Library, EntryPoint = "cuMemHostRegister_v2")]
    private static partial int MemHostRegister(nint host, nuint bytes, uint flags);

    [LibraryImport(Library, EntryPoint = "cuMemHostUnregister")]
    private static partial int MemHostUnregister(nint host);

    [LibraryImport(Library, EntryPoint = "cuCtxGetCurrent")]
    private static partial int CtxGetCurrent(out nint context);

    [LibraryImport(Library, EntryPoint = "cuCtxSetCurrent")]
    private static partial int CtxSetCurrent(nint context);

    [LibraryImport(Library, EntryPoint = "cuStreamCreate")]
    private static partial int StreamCreate(out nint stream, uint flags);

    [LibraryImport(Library, EntryPoint = "cuStreamDestroy_v2")]
    private static partial int StreamDestroy(nint stream);

    [LibraryImport(Library, EntryPoint = "cuEventCreate")]
    private static partial int EventCreate(out nint e, uint flags);

    [LibraryImport(Library, EntryPoint = "cuEventDestroy_v2")]
    private static partial int EventDestroy(nint e);

    [LibraryImport(Library, EntryPoint = "cuEventRecord")]
    private static partial int EventRecord(nint e, nint stream);

    [LibraryImport(Library, EntryPoint = "cuStreamWaitEvent")]
    private static partial int StreamWaitEvent(nint stream, nint e, uint flags);

    [LibraryImport(Library, EntryPoint = "cuEventElapsedTime")]
    private static partial int EventElapsedTime(out float milliseconds, nint start, nint end);

    [LibraryImport(Library, EntryPoint = "cuEventSynchronize")]
    private static partial int EventSynchronize(nint e);

    [LibraryImport(Library, EntryPoint = "cuMemcpyHtoDAsync_v2")]
    private static partial int MemcpyHtoDAsync(ulong device, nint host, nuint bytes, nint stream);

    [LibraryImport(Library, EntryPoint = "cuMemcpyDtoHAsync_v2")]
    private static partial int MemcpyDtoHAsync(nint host, ulong device, nuint bytes, nint stream);

    [LibraryImport(Library, EntryPoint = "cuInit")]
    private static partial int Init(uint flags);

    [LibraryImport(Library, EntryPoint = "cuCtxGetDevice")]
    private static partial int CtxGetDevice(out int device);

    [LibraryImport(Library, EntryPoint = "cuDeviceGetAttribute")]
    private static partial int DeviceGetAttribute(out int value, int attribute, int device);

    [LibraryImport(Library, EntryPoint = "cuMemGetInfo_v2")]
    private static partial int MemGetInfo(out nuint free, out nuint total);

    [LibraryImport(Library, EntryPoint = "cuMemAlloc_v2")]
    private static partial int MemAlloc(out nint pointer, nuint bytes);

    [LibraryImport(Library, EntryPoint = "cuMemFree_v2")]
    private static partial int MemFree(nint pointer);

    [LibraryImport(Library, EntryPoint = "cuModuleLoadData")]
    private static partial int ModuleLoadData(out nint module, byte[] image);

    [LibraryImport(Library, EntryPoint = "cuModuleGetFunction", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int ModuleGetFunction(out nint function, nint module, string name);

    [LibraryImport(Library, EntryPoint = "cuLaunchKernel")]
    private static unsafe partial int LaunchKernel(nint function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ,
        uint sharedBytes, nint stream, void** parameters, void** extra);
}

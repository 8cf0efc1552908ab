using System.Runtime.InteropServices;
using AiOs.Planner.Engine.Native;

namespace AiOs.Planner.Engine.Collectives;

/// <summary>
/// <c>libnccl.so.2</c>, loaded on first use (never at type load, so a machine without it runs everything else) and
/// looked for where PyTorch's CUDA wheels bring it: <c>$AIOS_NCCL_LIBRARY</c>, the loader's own search
/// (LD_LIBRARY_PATH, the system), then <c>site-packages/nvidia/nccl/lib</c> beside the libtorch this process loaded
/// or beside each LD_LIBRARY_PATH entry that is a <c>torch/lib</c> folder.
/// </summary>
internal static unsafe class NcclLibrary
{
    /// <summary>The environment variable that names the library file to load, first.</summary>
    public const string PathVariable = "AIOS_NCCL_LIBRARY";

    private const string Name = "libnccl.so.2";

    private static readonly Lazy<Exports> Loaded = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The library's entry points; throws <see cref="DllNotFoundException"/> with the places looked at and the fix when it is missing.</summary>
    public static Exports Get() => Loaded.Value;

    /// <summary>The files tried, in order (the bare name means the loader's own search).</summary>
    public static IReadOnlyList<string> Candidates()
    {
        var list = new List<string>();
        if (System.Environment.GetEnvironmentVariable(PathVariable) is { Length: > 0 } given) list.Add(given);
        list.Add(Name);
        var torchLibs = TorchRuntime.LoadedLibTorch().Select(Path.GetDirectoryName).OfType<string>().ToList();
        if (System.Environment.GetEnvironmentVariable("LD_LIBRARY_PATH") is { Length: > 0 } ld)
            torchLibs.AddRange(ld.Split(':', StringSplitOptions.RemoveEmptyEntries));
        // site-packages/torch/lib → site-packages/nvidia/nccl/lib (PyTorch's CUDA wheels depend on nvidia-nccl-cu*).
        foreach (string dir in torchLibs.Distinct(StringComparer.Ordinal))
        {
            string? sitePackages = Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(dir)));
            if (sitePackages is not null) list.Add(Path.Combine(sitePackages, "nvidia", "nccl", "lib", Name));
        }
        list.Add(Path.Combine("/usr/lib/x86_64-linux-gnu", Name));
        return [.. list.Distinct(StringComparer.Ordinal)];
    }

    private static Exports Load()
    {
        IReadOnlyList<string> candidates = Candidates();
        foreach (string candidate in candidates)
            if (NativeLibrary.TryLoad(candidate, out nint handle)) return new Exports(handle, candidate);
        throw new DllNotFoundException(
            $"NCCL ({Name}) was not found; looked at: {string.Join(", ", candidates)}. Several GPUs need NCCL: install PyTorch with CUDA " +
            $"(pip install torch brings nvidia-nccl), point LD_LIBRARY_PATH at PyTorch's torch/lib, or set {PathVariable} to the libnccl.so.2 file.");
    }

    /// <summary>The entry points used, resolved once.</summary>
    internal sealed class Exports
    {
        public Exports(nint handle, string path)
        {
            Path = path;
            nint Export(string name) => NativeLibrary.TryGetExport(handle, name, out nint f) ? f : throw new EntryPointNotFoundException(
                $"{path} has no {name}: it is not NCCL 2.x (aios needs 2.10 or newer for ncclAvg); point {PathVariable} at PyTorch's libnccl.so.2.");
            GetVersion = (delegate* unmanaged<int*, int>)Export("ncclGetVersion");
            GetUniqueId = (delegate* unmanaged<NcclUniqueId*, int>)Export("ncclGetUniqueId");
            CommInitRank = (delegate* unmanaged<nint*, int, NcclUniqueId, int, int>)Export("ncclCommInitRank");
            CommDestroy = (delegate* unmanaged<nint, int>)Export("ncclCommDestroy");
            CommAbort = (delegate* unmanaged<nint, int>)Export("ncclCommAbort");
            CommGetAsyncError = (delegate* unmanaged<nint, int*, int>)Export("ncclCommGetAsyncError");
            GetErrorString = (delegate* unmanaged<int, byte*>)Export("ncclGetErrorString");
            AllGather = (delegate* unmanaged<nint, nint, nuint, int, nint, nint, int>)Export("ncclAllGather");
            ReduceScatter = (delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int>)Export("ncclReduceScatter");
            AllReduce = (delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int>)Export("ncclAllReduce");
            Broadcast = (delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int>)Export("ncclBroadcast");
            GroupStart = (delegate* unmanaged<int>)Export("ncclGroupStart");
            GroupEnd = (delegate* unmanaged<int>)Export("ncclGroupEnd");
        }

        /// <summary>The file that was loaded.</summary>
        public string Path { get; }

        public delegate* unmanaged<int*, int> GetVersion { get; }
        public delegate* unmanaged<NcclUniqueId*, int> GetUniqueId { get; }
        public delegate* unmanaged<nint*, int, NcclUniqueId, int, int> CommInitRank { get; }
        public delegate* unmanaged<nint, int> CommDestroy { get; }
        public delegate* unmanaged<nint, int> CommAbort { get; }
        public delegate* unmanaged<nint, int*, int> CommGetAsyncError { get; }
        public delegate* unmanaged<int, byte*> GetErrorString { get; }
        public delegate* unmanaged<nint, nint, nuint, int, nint, nint, int> AllGather { get; }
        public delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int> ReduceScatter { get; }
        public delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int> AllReduce { get; }
        public delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int> Broadcast { get; }
        public delegate* unmanaged<int> GroupStart { get; }
        public delegate* unmanaged<int> GroupEnd { get; }

        /// <summary>Throws with NCCL's own words when <paramref name="result"/> is not ncclSuccess.</summary>
        public void Check(int result, string call)
        {
            if (result == 0) return;
            string said = Marshal.PtrToStringUTF8((nint)GetErrorString(result)) ?? "unknown error";
            throw new InvalidOperationException($"NCCL call {call} failed with error {result} ({said}); set NCCL_DEBUG=INFO for NCCL's own log.");
        }
    }
}

/// <summary>NCCL's <c>ncclUniqueId</c>: 128 opaque bytes made by rank 0 and handed to every rank through the rendezvous folder.</summary>
[System.Runtime.CompilerServices.InlineArray(128)]
internal struct NcclUniqueId
{
    private byte first;
}

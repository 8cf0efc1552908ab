using System.Runtime.InteropServices;

namespace AiOs.Planner.Engine.Native;

/// <summary>
/// libtorch's own CUDA-graph capture (<c>at::cuda::CUDAGraph</c>), which TorchSharp 0.107 does not wrap, reached through
/// the names libtorch exports (Itanium-mangled C++; the x86-64 System V calling convention passes and returns the 16-byte
/// stream and pool-id values in two registers). A capture records the kernels that TorchSharp calls launch on the current
/// stream into one graph, its allocations served from a private pool of the caching allocator (or one shared with earlier
/// graphs, <see cref="Pool"/>); a replay launches the whole graph on the current stream with one host call. Used by the
/// resident trainer's <c>--cuda-graphs</c> (<see cref="Execution.LayerGraphs"/>) and by <c>aios bench-dispatch --graph</c>.
/// </summary>
/// <remarks>
/// A C++ exception thrown inside these calls (a capture that met a synchronising call, say) cannot cross into .NET and ends
/// the process; callers keep captures to work that was run eagerly on the same stream first.
/// </remarks>
public sealed unsafe class CudaGraphCapture : IDisposable
{
    /// <summary><c>c10::cuda::CUDAStream</c>: a <c>c10::Stream</c> (device type, device index, then the 64-bit stream id).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct CudaStream
    {
        public long Device;
        public long Id;
    }

    /// <summary><c>at::cuda::MempoolId_t</c>: the caching allocator's id of a graph's private memory pool; (0, 0) asks for a new one.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public readonly record struct PoolId(ulong First, ulong Second);

    /// <summary>Bytes reserved for the C++ object (its size is libtorch's business; a few hundred bytes in 2.x).</summary>
    private const int ObjectBytes = 16384;

    private static readonly Lazy<Api> Functions = new(Api.Load);
    private byte* _graph;
    private bool _captured;

    /// <summary>Constructs an empty graph (its instantiation happens at the end of the capture).</summary>
    public CudaGraphCapture()
    {
        var api = Functions.Value;
        _graph = (byte*)NativeMemory.AllocZeroed(ObjectBytes);
        api.Construct(_graph, 0);
    }

    /// <summary>
    /// Captures <paramref name="work"/>: makes a stream from libtorch's pool current (a capture needs a stream other than
    /// the default one), runs <paramref name="warmUp"/> on it eagerly (cuBLAS makes its handle and workspace for a stream
    /// on first use, which a capture may not), drains the device, captures into a private memory pool (libtorch
    /// instantiates the graph at the end), and makes the previous stream current again.
    /// </summary>
    public void Capture(int device, Action warmUp, Action work)
    {
        using var side = SideStreamScope.Enter(device);
        warmUp();
        TorchSharp.torch.cuda.synchronize();
        Capture(work, default);
    }

    /// <summary>
    /// Captures <paramref name="work"/> on the current stream, which must not be the default one (<see cref="SideStreamScope"/>),
    /// its allocations served from <paramref name="pool"/> (another graph's <see cref="Pool"/>: freed blocks are shared, so
    /// the graphs must be replayed in the order they were captured) or, with the default id, from a new private pool.
    /// Thread-local capture mode: other threads (autograd's device thread among them) may go on calling CUDA.
    /// </summary>
    public void Capture(Action work, PoolId pool)
    {
        ObjectDisposedException.ThrowIf(_graph is null, this);
        if (_captured) throw new InvalidOperationException("This graph holds a capture already; make another.");
        var api = Functions.Value;
        api.CaptureBegin(_graph, pool.First, pool.Second, ThreadLocalMode);
        try
        {
            work();
        }
        finally
        {
            api.CaptureEnd(_graph);
        }
        _captured = true;
    }

    /// <summary>The memory pool this graph's capture allocated from, for later captures to share.</summary>
    public PoolId Pool
    {
        get
        {
            ObjectDisposedException.ThrowIf(_graph is null, this);
            if (!_captured) throw new InvalidOperationException("Nothing was captured yet, so there is no pool.");
            return Functions.Value.GraphPool(_graph);
        }
    }

    /// <summary>A stream from libtorch's pool made current on a device until disposed, when the previous stream is made current again.</summary>
    public readonly struct SideStreamScope : IDisposable
    {
        private readonly CudaStream _previous;
        private readonly bool _entered;

        private SideStreamScope(CudaStream previous)
        {
            _previous = previous;
            _entered = true;
        }

        /// <summary>Makes a pool stream of <paramref name="device"/> current.</summary>
        public static SideStreamScope Enter(int device)
        {
            var api = Functions.Value;
            var previous = api.CurrentStream((sbyte)device);
            api.SetCurrentStream(api.StreamFromPool(0, (sbyte)device));
            return new SideStreamScope(previous);
        }

        /// <summary>Makes the previous stream current again.</summary>
        public void Dispose()
        {
            if (_entered) Functions.Value.SetCurrentStream(_previous);
        }
    }

    /// <summary>Launches the captured graph on the current stream, after the work queued there (libtorch first refreshes the dropout generator's seed and offset for it).</summary>
    public void Replay()
    {
        ObjectDisposedException.ThrowIf(_graph is null, this);
        if (!_captured) throw new InvalidOperationException("Nothing was captured to replay.");
        Functions.Value.Replay(_graph);
    }

    /// <summary>Destroys the graph and returns its private pool to the caching allocator.</summary>
    public void Dispose()
    {
        if (_graph is null) return;
        Functions.Value.Destroy(_graph);
        NativeMemory.Free(_graph);
        _graph = null;
    }

    /// <summary>cudaStreamCaptureModeThreadLocal.</summary>
    private const int ThreadLocalMode = 1;

    private sealed class Api
    {
        public required delegate* unmanaged<byte*, byte, void> Construct;
        public required delegate* unmanaged<byte*, ulong, ulong, int, void> CaptureBegin;
        public required delegate* unmanaged<byte*, void> CaptureEnd;
        public required delegate* unmanaged<byte*, void> Replay;
        public required delegate* unmanaged<byte*, void> Destroy;
        public required delegate* unmanaged<byte*, PoolId> GraphPool;
        public required delegate* unmanaged<byte, sbyte, CudaStream> StreamFromPool;
        public required delegate* unmanaged<sbyte, CudaStream> CurrentStream;
        public required delegate* unmanaged<CudaStream, void> SetCurrentStream;

        public static Api Load()
        {
            if (!NativeLibrary.TryLoad("libtorch_cuda.so", out nint torch) || !NativeLibrary.TryLoad("libc10_cuda.so", out nint c10))
                throw new NotSupportedException(
                    "CUDA-graph capture needs PyTorch's CUDA libtorch (libtorch_cuda.so, libc10_cuda.so), which this process cannot load: " +
                    "run on a GPU machine with LD_LIBRARY_PATH at PyTorch's lib folder (docs/engine.md, \"CUDA setup\").");
            nint F(nint lib, string name) => NativeLibrary.TryGetExport(lib, name, out nint f) ? f
                : throw new NotSupportedException($"This libtorch does not export {name}; CUDA-graph capture needs PyTorch 2.6 or later's libtorch_cuda.");
            return new Api
            {
                Construct = (delegate* unmanaged<byte*, byte, void>)F(torch, "_ZN2at4cuda9CUDAGraphC1Eb"),
                CaptureBegin = (delegate* unmanaged<byte*, ulong, ulong, int, void>)F(torch, "_ZN2at4cuda9CUDAGraph13capture_beginESt4pairIyyE21cudaStreamCaptureMode"),
                CaptureEnd = (delegate* unmanaged<byte*, void>)F(torch, "_ZN2at4cuda9CUDAGraph11capture_endEv"),
                Replay = (delegate* unmanaged<byte*, void>)F(torch, "_ZN2at4cuda9CUDAGraph6replayEv"),
                Destroy = (delegate* unmanaged<byte*, void>)F(torch, "_ZN2at4cuda9CUDAGraphD1Ev"),
                GraphPool = (delegate* unmanaged<byte*, PoolId>)F(torch, "_ZN2at4cuda9CUDAGraph4poolEv"),
                StreamFromPool = (delegate* unmanaged<byte, sbyte, CudaStream>)F(c10, "_ZN3c104cuda17getStreamFromPoolEba"),
                CurrentStream = (delegate* unmanaged<sbyte, CudaStream>)F(c10, "_ZN3c104cuda20getCurrentCUDAStreamEa"),
                SetCurrentStream = (delegate* unmanaged<CudaStream, void>)F(c10, "_ZN3c104cuda20setCurrentCUDAStreamENS0_10CUDAStreamE"),
            };
        }
    }
}

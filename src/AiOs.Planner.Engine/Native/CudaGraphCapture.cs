using System.Runtime.InteropServices;

namespace AiOs.Planner.Engine.Native;

/// <summary>
/// An experiment for issue 16's launch-bound steps: libtorch's own CUDA-graph capture (<c>at::cuda::CUDAGraph</c>), which
/// TorchSharp 0.107 does not wrap, reached through the names libtorch exports (Itanium-mangled C++; the x86-64 System V
/// calling convention passes and returns the 16-byte stream and pool-id values in two registers). A capture records the
/// kernels that TorchSharp calls launch on the current stream into one graph, its allocations served from a private pool
/// of the caching allocator; a replay launches the whole graph with one host call. Used by <c>aios bench-dispatch
/// --graph</c> only, to measure what a replay costs the host against the eager pass; the trainers do not use it.
/// </summary>
public sealed unsafe class CudaGraphCapture : IDisposable
{
    /// <summary><c>c10::cuda::CUDAStream</c>: a <c>c10::Stream</c> (device type, device index, then the 64-bit stream id).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct CudaStream
    {
        public long Device;
        public long Id;
    }

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
    /// on first use, which a capture may not), drains the device, captures in thread-local mode into a private memory pool
    /// (libtorch instantiates the graph at the end), and makes the previous stream current again.
    /// </summary>
    public void Capture(int device, Action warmUp, Action work)
    {
        ObjectDisposedException.ThrowIf(_graph is null, this);
        if (_captured) throw new InvalidOperationException("This graph holds a capture already; make another.");
        var api = Functions.Value;
        var previous = api.CurrentStream((sbyte)device);
        api.SetCurrentStream(api.StreamFromPool(0, (sbyte)device));
        try
        {
            warmUp();
            TorchSharp.torch.cuda.synchronize();
            api.CaptureBegin(_graph, 0, 0, ThreadLocalMode);
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
        finally
        {
            api.SetCurrentStream(previous);
        }
    }

    /// <summary>Launches the captured graph on the stream it was captured on (libtorch orders it after the current stream's work).</summary>
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
                StreamFromPool = (delegate* unmanaged<byte, sbyte, CudaStream>)F(c10, "_ZN3c104cuda17getStreamFromPoolEba"),
                CurrentStream = (delegate* unmanaged<sbyte, CudaStream>)F(c10, "_ZN3c104cuda20getCurrentCUDAStreamEa"),
                SetCurrentStream = (delegate* unmanaged<CudaStream, void>)F(c10, "_ZN3c104cuda20setCurrentCUDAStreamENS0_10CUDAStreamE"),
            };
        }
    }
}

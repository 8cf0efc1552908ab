using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Native;

/// <summary>
/// A host tensor whose memory the engine maps itself (anonymous <c>mmap</c>, faulted in when made), page-locked with
/// <c>cuMemHostRegister</c> when it feeds a GPU. It replaces <c>zeros(n).pin_memory()</c>, which cost three ways on the
/// H200: the pageable <c>zeros</c> stayed resident in the C heap after the pinned copy was made (the engine keeps freed
/// heap blocks, <see cref="HostHeap"/>), PyTorch's pinned allocator rounds every block up to a power of two (a 201 MB
/// bf16 layer of a 3B model takes 256 MB), and pages were first touched in the first step. Here each tensor is its
/// byte size rounded to a page, stored once, and resident before training starts.
/// </summary>
public sealed partial class HostBuffer : SafeHandle
{
    private const int ProtReadWrite = 3, MapPrivateAnonymous = 0x02 | 0x20, MadvHugePage = 14, MadvPopulateWrite = 23;
    private const long PageSize = 4096;
    private readonly Tensor _tensor;
    private readonly bool _registered;

    private HostBuffer(nint address, long mappedBytes, long elements, ScalarType dtype, bool registered) : base(0, ownsHandle: true)
    {
        SetHandle(address);
        MappedBytes = mappedBytes;
        _registered = registered;
        _tensor = FromAddress(address, elements, dtype);
    }

    /// <summary>Bytes mapped (the tensor's bytes rounded up to a 4 KiB page).</summary>
    public long MappedBytes { get; }

    /// <summary>Whether the memory is page-locked for the GPU's copy engines.</summary>
    public bool Pinned => _registered;

    /// <summary>The memory as a 1-D CPU tensor (it does not own the memory; do not dispose it, dispose the buffer).</summary>
    public Tensor Tensor => _tensor;

    /// <summary>Address of the first element.</summary>
    public nint Address => handle;

    /// <summary>The first <paramref name="count"/> fp32 elements (any buffer size; a tensor's <c>bytes</c> stops at 2 GiB).</summary>
    public unsafe Span<float> Floats(int count)
    {
        if ((long)count * sizeof(float) > MappedBytes) throw new ArgumentOutOfRangeException(nameof(count), $"The buffer holds {MappedBytes:N0} bytes, fewer than {count} floats.");
        return new Span<float>((void*)handle, count);
    }

    /// <summary>
    /// Maps <paramref name="elements"/> zeroed elements of <paramref name="dtype"/>, faults every page in (huge pages where the
    /// kernel offers them), and with <paramref name="pin"/> page-locks them in the current CUDA context (call on a thread where it
    /// is current, or pass <paramref name="context"/> to bind it).
    /// </summary>
    /// <exception cref="InvalidOperationException">The kernel refused the mapping.</exception>
    public static HostBuffer Allocate(long elements, ScalarType dtype, bool pin, nint context = 0) => Map(elements, dtype, pin, context, fault: true);

    /// <summary>
    /// Zeros that are only read: mapped but never faulted in, so every page reads as the kernel's shared zero page and the
    /// buffer adds nothing to the resident set however large it is (a managed zero array may be cleared, and so touched, by the GC).
    /// </summary>
    public static HostBuffer ReadOnlyZeros(long elements, ScalarType dtype) => Map(elements, dtype, pin: false, context: 0, fault: false);

    private static HostBuffer Map(long elements, ScalarType dtype, bool pin, nint context, bool fault)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(elements);
        long bytes = elements * ElementSize(dtype);
        long mapped = Math.Max(PageSize, (bytes + PageSize - 1) / PageSize * PageSize);
        nint address = Mmap(0, (nuint)mapped, ProtReadWrite, MapPrivateAnonymous, -1, 0);
        if (address == -1)
            throw new InvalidOperationException($"Could not map {mapped:N0} bytes of host memory (errno {Marshal.GetLastPInvokeError()}); lower the host-memory need (see `aios plan`) or free RAM.");
        bool registered = false;
        try
        {
            if (fault)
            {
                _ = Madvise(address, (nuint)mapped, MadvHugePage);
                // Fault the pages in now (one call, in the kernel) so the first step does not; older kernels lack POPULATE_WRITE.
                if (Madvise(address, (nuint)mapped, MadvPopulateWrite) != 0) Touch(address, mapped);
            }
            if (pin)
            {
                if (context != 0) CudaDriver.MakeCurrent(context);
                CudaDriver.Register(address, mapped);
                registered = true;
            }
            return new HostBuffer(address, mapped, elements, dtype, registered);
        }
        catch
        {
            if (registered) CudaDriver.Unregister(address);
            _ = Munmap(address, (nuint)mapped);
            throw;
        }
    }

    /// <summary>One buffer per entry of <paramref name="elements"/>, made in parallel (faulting and pinning run at memory speed on every core).</summary>
    public static HostBuffer[] AllocateMany(IReadOnlyList<long> elements, ScalarType dtype, bool pin)
    {
        nint context = pin ? CurrentOrPrimaryContext() : 0;
        var result = new HostBuffer[elements.Count];
        try
        {
            Parallel.For(0, elements.Count, i => result[i] = Allocate(elements[i], dtype, pin, context));
            return result;
        }
        catch
        {
            foreach (HostBuffer? b in result) b?.Dispose();
            throw;
        }
    }

    /// <summary>The CUDA context current on this thread; when none is yet, one tiny device tensor makes libtorch bind its primary context here.</summary>
    private static nint CurrentOrPrimaryContext()
    {
        nint context = CudaDriver.CurrentContext();
        if (context != 0) return context;
        using (Tensor _ = zeros(1, device: TorchSharp.torch.CUDA)) { }
        context = CudaDriver.CurrentContext();
        return context != 0 ? context : throw new InvalidOperationException("No CUDA context is current after creating a CUDA tensor; page-locked host buffers need one (is --device cuda available?).");
    }

    /// <summary>Bytes per element of <paramref name="dtype"/>.</summary>
    public static int ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.BFloat16 or ScalarType.Float16 or ScalarType.Int16 => 2,
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Byte or ScalarType.Int8 or ScalarType.Bool => 1,
        _ => throw new NotSupportedException($"Host buffers of {dtype} are not supported."),
    };

    /// <inheritdoc/>
    public override bool IsInvalid => handle == 0;

    /// <inheritdoc/>
    protected override bool ReleaseHandle()
    {
        _tensor.Dispose();
        if (_registered)
        {
            try { CudaDriver.Unregister(handle); }
            catch (InvalidOperationException) { /* the context is gone at exit; unmapping frees the pages anyway */ }
        }
        return Munmap(handle, (nuint)MappedBytes) == 0;
    }

    private static unsafe void Touch(nint address, long bytes)
    {
        byte* p = (byte*)address;
        for (long o = 0; o < bytes; o += PageSize) p[o] = 0;
    }

    /// <summary>A tensor over memory the caller owns: libtorch's from_blob with a deleter that does nothing.</summary>
    private static unsafe Tensor FromAddress(nint address, long elements, ScalarType dtype)
    {
        long size = elements;
        nint t = TensorNew(address, &NoDelete, &size, 1, (sbyte)dtype, (sbyte)dtype, (int)TorchSharp.DeviceType.CPU, 0, 0);
        if (t == 0) TorchSharp.torch.CheckForErrors();
        return Tensor.UnsafeCreateTensor(t);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void NoDelete(nint data) { }

    [LibraryImport("LibTorchSharp", EntryPoint = "THSTensor_new")]
    private static unsafe partial nint TensorNew(nint data, delegate* unmanaged[Cdecl]<nint, void> deleter, long* sizes, int dimensions,
        sbyte type, sbyte dtype, int deviceType, int deviceIndex, byte requiresGrad);

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial nint Mmap(nint address, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "munmap")]
    private static partial int Munmap(nint address, nuint length);

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Madvise(nint address, nuint length, int advice);
}

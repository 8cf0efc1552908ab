using System.Runtime.InteropServices;
using AiOs.Planner.Units;

namespace AiOs.Planner.IO;

/// <summary>
/// Native memory aligned to <see cref="Alignment"/> bytes, as O_DIRECT needs: allocated here (not zeroed)
/// or a <see cref="Wrap"/>ped view of memory owned elsewhere. Free it with <see cref="Dispose"/>; the
/// memory must not be freed while an asynchronous read or write uses it, so await those first.
/// </summary>
public sealed unsafe class AlignedBuffer : IDisposable
{
    /// <summary>Alignment of address, length and file offset for direct I/O: 4096 bytes suits every Linux block device in use.</summary>
    public const int Alignment = 4096;

    private readonly bool _owned;
    private void* _pointer;

    /// <summary>Allocates <paramref name="size"/> bytes, which must be a multiple of <see cref="Alignment"/>.</summary>
    public AlignedBuffer(Bytes size)
    {
        CheckSize(size);
        Length = size.Value;
        _pointer = NativeMemory.AlignedAlloc((nuint)size.Value, Alignment);
        _owned = true;
    }

    private AlignedBuffer(void* pointer, long length)
    {
        _pointer = pointer;
        Length = length;
    }

    /// <summary>
    /// A view of memory someone else owns (e.g. pinned tensor storage narrowed to a 4096-byte boundary);
    /// disposing the view does not free it. Address and size must be aligned.
    /// </summary>
    public static AlignedBuffer Wrap(nint address, Bytes size)
    {
        CheckSize(size);
        if (address == 0 || address % Alignment != 0)
            throw new MisalignedIoException($"Memory for direct I/O must start on a {Alignment}-byte boundary; address 0x{address:x} does not.");
        return new AlignedBuffer((void*)address, size.Value);
    }

    private static void CheckSize(Bytes size)
    {
        if (size.Value <= 0 || size.Value % Alignment != 0)
            throw new MisalignedIoException($"An aligned buffer's size must be a positive multiple of {Alignment} bytes; got {size.Value}.");
    }

    /// <summary>Size in bytes.</summary>
    public long Length { get; }

    /// <summary>Size as a <see cref="Bytes"/> value.</summary>
    public Bytes Size => new(Length);

    /// <summary>Start of the memory; valid until disposed.</summary>
    public nint Address => _pointer is null ? throw new ObjectDisposedException(nameof(AlignedBuffer)) : (nint)_pointer;

    /// <summary>The bytes from <paramref name="offset"/>, at most int.MaxValue of them.</summary>
    public Span<byte> AsSpan(long offset = 0, int? length = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        long available = Length - offset;
        int n = length ?? (int)Math.Min(available, int.MaxValue);
        if (n < 0 || n > available) throw new ArgumentOutOfRangeException(nameof(length), "The span runs past the end of the buffer.");
        return new Span<byte>((byte*)Address + offset, n);
    }

    /// <summary>The memory viewed as floats (optimizer states, master weights), from float index <paramref name="start"/>.</summary>
    public Span<float> AsFloats(long start = 0, int? count = null)
    {
        long total = Length / sizeof(float);
        int n = count ?? (int)Math.Min(total - start, int.MaxValue);
        if (start < 0 || n < 0 || start + n > total) throw new ArgumentOutOfRangeException(nameof(count), "The span runs past the end of the buffer.");
        return new Span<float>((float*)Address + start, n);
    }

    public void Dispose()
    {
        if (_pointer is null) return;
        if (_owned) NativeMemory.AlignedFree(_pointer);
        _pointer = null;
    }
}

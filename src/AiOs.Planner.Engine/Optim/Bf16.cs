using System.Runtime.CompilerServices;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using AiOs.Planner.Optim;

namespace AiOs.Planner.Engine.Optim;

/// <summary>fp32 → training-precision bytes, rounding as PyTorch does (bf16 and fp16: round to nearest even).</summary>
public static class PrecisionCast
{
    /// <summary>Writes <paramref name="source"/> as bf16 into <paramref name="destination"/> (two bytes per element), in parallel chunks for long spans.</summary>
    public static void ToBf16(ReadOnlySpan<float> source, Span<byte> destination)
    {
        Span<ushort> dst = MemoryMarshal.Cast<byte, ushort>(destination);
        if (dst.Length != source.Length) throw new ArgumentException("Destination must hold two bytes per element.", nameof(destination));
        Chunked.Map(source, dst, ToBf16Chunk);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ToBf16Chunk(ReadOnlySpan<float> source, Span<ushort> dst)
    {
        ReadOnlySpan<uint> bits = MemoryMarshal.Cast<float, uint>(source);
        for (int i = 0; i < bits.Length; i++)
        {
            uint b = bits[i];
            dst[i] = float.IsNaN(source[i]) ? (ushort)0x7FC0 : (ushort)((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
        }
    }

    /// <summary>
    /// Writes <paramref name="source"/> as bf16 rounded to nearest with ties away from zero (<see cref="MasterSplit.Hi"/>: the
    /// high half of a split master; differs from <see cref="ToBf16"/> only at exact ties), in parallel chunks for long spans.
    /// </summary>
    public static void ToBf16TiesAway(ReadOnlySpan<float> source, Span<byte> destination)
    {
        Span<ushort> dst = MemoryMarshal.Cast<byte, ushort>(destination);
        if (dst.Length != source.Length) throw new ArgumentException("Destination must hold two bytes per element.", nameof(destination));
        Chunked.Map(source, dst, static (from, to) =>
        {
            for (int i = 0; i < from.Length; i++) to[i] = MasterSplit.Hi(from[i]);
        });
    }

    /// <summary>
    /// destination[i] = widen(bf16[i]), exact (the bits shifted up by 16): vectorised, in parallel chunks for long spans.
    /// The engine's bf16 gradient store hands the optimizer its sub-groups through this.
    /// </summary>
    public static void WidenBf16(ReadOnlySpan<ushort> bf16, Span<float> destination)
    {
        if (destination.Length != bf16.Length) throw new ArgumentException("Lengths differ.", nameof(destination));
        Chunked.Map(bf16, destination, WidenBf16Chunk);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WidenBf16Chunk(ReadOnlySpan<ushort> bf16, Span<float> destination)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            // One Vector<ushort> widens into two Vector<uint> (its lower and upper halves, in order), each a Vector<float>'s bits.
            ReadOnlySpan<Vector<ushort>> packed = MemoryMarshal.Cast<ushort, Vector<ushort>>(bf16);
            Span<Vector<float>> wide = MemoryMarshal.Cast<float, Vector<float>>(destination);
            for (int v = 0; v < packed.Length; v++)
            {
                Vector.Widen(packed[v], out Vector<uint> lo, out Vector<uint> hi);
                wide[2 * v] = Vector.AsVectorSingle(Vector.ShiftLeft(lo, 16));
                wide[2 * v + 1] = Vector.AsVectorSingle(Vector.ShiftLeft(hi, 16));
            }
            i = packed.Length * Vector<ushort>.Count;
        }
        for (; i < bf16.Length; i++) destination[i] = BitConverter.UInt32BitsToSingle((uint)bf16[i] << 16);
    }

    /// <summary>Writes <paramref name="source"/> into <paramref name="destination"/> as fp32 (four bytes per element) or bf16.</summary>
    public static void ToWorking(ReadOnlySpan<float> source, Span<byte> destination, int bytesPerElement)
    {
        if (bytesPerElement == 4) MemoryMarshal.AsBytes(source).CopyTo(destination);
        else if (bytesPerElement == 2) ToBf16(source, destination);
        else throw new ArgumentOutOfRangeException(nameof(bytesPerElement), "Only fp32 and bf16 working copies are supported.");
    }

    /// <summary>Writes <paramref name="source"/> into <paramref name="destination"/> in <paramref name="type"/> (fp32, bf16 or fp16).</summary>
    public static void ToWorking(ReadOnlySpan<float> source, Span<byte> destination, TorchSharp.torch.ScalarType type)
    {
        switch (type)
        {
            case TorchSharp.torch.ScalarType.Float16: ToFp16(source, destination); break;
            case TorchSharp.torch.ScalarType.BFloat16: ToBf16(source, destination); break;
            case TorchSharp.torch.ScalarType.Float32: MemoryMarshal.AsBytes(source).CopyTo(destination); break;
            default: throw new ArgumentOutOfRangeException(nameof(type), $"Working copies in {type} are not supported.");
        }
    }

    /// <summary>
    /// Writes <paramref name="source"/> as IEEE fp16 (round to nearest even, as PyTorch casts), in parallel chunks for long spans.
    /// Vectorised (<see cref="TensorPrimitives.ConvertToHalf(ReadOnlySpan{float}, Span{Half})"/>, the same bits as a cast per
    /// element): a cast per element ran at 0.45 G elements/s on one core of the CI VM against 4.4. It was the write-back of every
    /// updated parameter in fp16's offloaded step (1.4 G parameters/s against bf16's 4.8 on an H100 VM, 2026-12-07,
    /// docs/validation/gpu-2026-12-07-session28.md); CpuAdam now casts that copy inside its pass, and this one serves the
    /// 8-bit update's copies, NVMe write-backs, checkpoints and start-up.
    /// </summary>
    public static void ToFp16(ReadOnlySpan<float> source, Span<byte> destination)
    {
        Span<Half> dst = MemoryMarshal.Cast<byte, Half>(destination);
        if (dst.Length != source.Length) throw new ArgumentException("Destination must hold two bytes per element.", nameof(destination));
        Chunked.Map(source, dst, static (from, to) => TensorPrimitives.ConvertToHalf(from, to));
    }

    /// <summary>Elements widened at a time into a stack buffer by <see cref="AddFp16"/> before they are added.</summary>
    private const int WidenBlock = 2048;

    /// <summary>accumulator[i] (+)= widen(fp16[i]), exact; vectorised, in parallel chunks for long spans.</summary>
    public static void AddFp16(Span<float> accumulator, ReadOnlySpan<Half> fp16, bool overwrite)
    {
        if (accumulator.Length != fp16.Length) throw new ArgumentException("Lengths differ.", nameof(fp16));
        if (overwrite)
        {
            Chunked.Map(fp16, accumulator, static (src, dst) => TensorPrimitives.ConvertToSingle(src, dst));
            return;
        }
        Chunked.Map(fp16, accumulator, static (src, dst) =>
        {
            Span<float> wide = stackalloc float[WidenBlock];
            for (int i = 0; i < src.Length; i += WidenBlock)
            {
                int n = Math.Min(WidenBlock, src.Length - i);
                TensorPrimitives.ConvertToSingle(src.Slice(i, n), wide[..n]);
                TensorPrimitives.Add(dst.Slice(i, n), wide[..n], dst.Slice(i, n));
            }
        });
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AiOs.Planner.Optim;

/// <summary>
/// Block-wise 8-bit quantisation: values are cut into blocks of <see cref="BlockSize"/> from the start of the span
/// (the last block may be shorter); each block stores one fp32 scale and one byte per value, the code of
/// value / scale in a <see cref="DynamicQuantizationMap"/>. The scale is the block's element of largest magnitude
/// with its sign (on a tie the positive one), so that element, a block of zeros and a block of one constant
/// round-trip exactly; every other value moves by at most <see cref="DynamicQuantizationMap.HalfGapAt"/>(value /
/// scale) × |scale|. Requantising a dequantised block gives the same codes and scale back.
/// </summary>
public static unsafe class BlockwiseQuantization
{
    /// <summary>Values per block (Dettmers et al. use 2,048): one fp32 scale per 8 KiB of fp32 values.</summary>
    public const int BlockSize = 2048;

    /// <summary>Blocks (so scales) of a tensor of <paramref name="elements"/> values.</summary>
    public static long Blocks(long elements) => (elements + BlockSize - 1) / BlockSize;

    /// <summary>Quantises <paramref name="values"/> into <paramref name="codes"/> (same length) and <paramref name="scales"/> (one per block).</summary>
    /// <exception cref="ArgumentException">Lengths disagree, or a value is NaN or infinite (it would poison its block's scale).</exception>
    public static void Quantize(ReadOnlySpan<float> values, Span<byte> codes, Span<float> scales, DynamicQuantizationMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        CheckLengths(values.Length, codes.Length, scales.Length);
        for (int b = 0, start = 0; start < values.Length; b++, start += BlockSize)
        {
            int n = Math.Min(BlockSize, values.Length - start);
            ReadOnlySpan<float> block = values.Slice(start, n);
            float max = 0, min = 0;
            for (int i = 0; i < n; i++)
            {
                float x = block[i];
                if (!float.IsFinite(x)) throw new ArgumentException($"Value {x} at element {start + i} is not finite; it cannot be quantised.", nameof(values));
                max = Math.Max(max, x);
                min = Math.Min(min, x);
            }
            float scale = ScaleOf(max, min);
            scales[b] = scale;
            fixed (float* x = block)
            fixed (byte* c = codes.Slice(start, n))
                QuantizeBlock(x, c, n, scale, map);
        }
    }

    /// <summary>
    /// Quantises Adam's second moment (v ≥ 0) by its square root with <see cref="DynamicQuantizationMap.Unsigned"/>: each block's
    /// scale is √max v and a value's code is that of √v / scale. The map reaches seven decades below a block's largest value;
    /// by the root that is fourteen decades of v, so the small v of rarely large gradients do not round to zero (which made
    /// their updates m / ε-sized). <see cref="BlockwiseAdam"/> codes v this way; <see cref="DequantizeSecondMoment"/> undoes it.
    /// </summary>
    public static void QuantizeSecondMoment(ReadOnlySpan<float> values, Span<byte> codes, Span<float> scales) =>
        QuantizeSecondMoment(values, codes, scales, new float[values.Length]);

    /// <summary>
    /// As <see cref="QuantizeSecondMoment(ReadOnlySpan{float}, Span{byte}, Span{float})"/>, the square roots made in
    /// <paramref name="roots"/> (at least as long as the values; overwritten), so a caller quantising many chunks reuses one.
    /// </summary>
    public static void QuantizeSecondMoment(ReadOnlySpan<float> values, Span<byte> codes, Span<float> scales, Span<float> roots)
    {
        if (roots.Length < values.Length) throw new ArgumentException($"The roots' scratch holds {roots.Length} values, fewer than the {values.Length} quantised.", nameof(roots));
        roots = roots[..values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            if (values[i] < 0) throw new ArgumentException($"Second moment {values[i]} at element {i} is negative; it cannot be quantised.", nameof(values));
            roots[i] = MathF.Sqrt(values[i]);
        }
        Quantize(roots, codes, scales, DynamicQuantizationMap.Unsigned);
    }

    /// <summary>The second moments that <paramref name="codes"/> and <paramref name="scales"/> stand for (<see cref="QuantizeSecondMoment(ReadOnlySpan{float}, Span{byte}, Span{float})"/>).</summary>
    public static void DequantizeSecondMoment(ReadOnlySpan<byte> codes, ReadOnlySpan<float> scales, Span<float> values)
    {
        Dequantize(codes, scales, values, DynamicQuantizationMap.Unsigned);
        for (int i = 0; i < values.Length; i++) values[i] *= values[i];
    }

    /// <summary>Writes the values that <paramref name="codes"/> and <paramref name="scales"/> stand for into <paramref name="values"/>.</summary>
    public static void Dequantize(ReadOnlySpan<byte> codes, ReadOnlySpan<float> scales, Span<float> values, DynamicQuantizationMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        CheckLengths(values.Length, codes.Length, scales.Length);
        ReadOnlySpan<float> table = map.Values;
        for (int i = 0; i < values.Length; i++) values[i] = table[codes[i]] * scales[i / BlockSize];
    }

    /// <summary>The block's scale from its largest and smallest values (max ≥ 0 ≥ min): the one of larger magnitude, with its sign.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float ScaleOf(float max, float min) => max >= -min ? max : min;

    /// <summary>Codes of x[0 … n) for <paramref name="scale"/>; the caller has checked every value is finite.</summary>
    internal static void QuantizeBlock(float* x, byte* codes, int n, float scale, DynamicQuantizationMap map)
    {
        float inv = scale == 0 ? 0 : 1 / scale;
        int i = 0;
        // A finite 1/scale keeps |y| below 2, the arithmetic look-up's range; a subnormal scale (1/scale = ∞) takes the table.
        if (QuantizationVectors.IsSupported && float.IsFinite(inv))
        {
            var t = new QuantizationVectors.RegionTables(map);
            var vinv = Vector256.Create(inv);
            for (; i <= n - 8; i += 8)
            {
                Vector256<float> y = Avx.LoadVector256(x + i) * vinv;
                // The arithmetic rank is exact unless a value lies within the tolerance of a threshold (about 1 group in
                // 100 of random values); those groups take the bucket table's two gathers instead.
                Vector256<int> r = QuantizationVectors.Ranks(y, t, out Vector256<int> unsure);
                if (unsure != Vector256<int>.Zero) r = TableRanks(y, map);
                *(ulong*)(codes + i) = QuantizationVectors.Pack(QuantizationVectors.Codes(r, y, map.IsSigned));
            }
        }
        else if (Avx2.IsSupported)
        {
            var vinv = Vector256.Create(inv);
            for (; i <= n - 8; i += 8)
            {
                Vector256<float> y = Avx.LoadVector256(x + i) * vinv;
                *(ulong*)(codes + i) = QuantizationVectors.Pack(QuantizationVectors.Codes(TableRanks(y, map), y, map.IsSigned));
            }
        }
        for (; i < n; i++) codes[i] = map.Quantize(x[i] * inv);
    }

    /// <summary>Ranks of |y| by the bucket table: two independent AVX2 gathers and a comparison.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static Vector256<int> TableRanks(Vector256<float> y, DynamicQuantizationMap map)
    {
        fixed (int* ranks = map.BucketRanks)
        fixed (float* thresholds = map.BucketThresholds)
            return TableRanks(y, ranks, thresholds);
    }

    /// <summary>As the map overload, on the map's pinned tables.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<int> TableRanks(Vector256<float> y, int* ranks, float* thresholds)
    {
        Vector256<float> a = Vector256.Abs(y);
        Vector256<int> bucket = Vector256.ShiftRightArithmetic(a.AsInt32() - Vector256.Create(DynamicQuantizationMap.LowestBits), 23 - DynamicQuantizationMap.BucketMantissaBits);
        bucket = Vector256.Min(Vector256.Max(bucket, Vector256<int>.Zero), Vector256.Create(DynamicQuantizationMap.BucketCount - 1));
        Vector256<int> r = Avx2.GatherVector256(ranks, bucket, 4);
        Vector256<float> t = Avx2.GatherVector256(thresholds, bucket, 4);
        return r - Vector256.GreaterThan(a, t).AsInt32();
    }

    private static void CheckLengths(int values, int codes, int scales)
    {
        if (codes != values || scales != Blocks(values))
            throw new ArgumentException($"{values} values need {values} codes and {Blocks(values)} scales (blocks of {BlockSize}); got {codes} and {scales}.");
    }
}

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
        if (Avx2.IsSupported)
        {
            fixed (int* ranks = map.BucketRanks)
            fixed (float* thresholds = map.BucketThresholds)
            {
                var t = new DecadeTables(map);
                var vinv = Vector256.Create(inv);
                for (; i <= n - 8; i += 8)
                {
                    Vector256<float> y = Avx.LoadVector256(x + i) * vinv;
                    // The arithmetic rank is exact unless a value lies within the tolerance of a threshold (a few in 10⁴)
                    // or is not below 2; those groups take the bucket table's two gathers instead.
                    Vector256<int> r = ArithmeticRanks(y, t, out Vector256<int> unsure);
                    if (unsure != Vector256<int>.Zero) r = TableRanks(y, ranks, thresholds);
                    *(ulong*)(codes + i) = Pack(r, y, map.IsSigned);
                }
            }
        }
        for (; i < n; i++) codes[i] = map.Quantize(x[i] * inv);
    }

    /// <summary>The map's per-decade constants in registers, for <see cref="ArithmeticRanks"/>.</summary>
    internal readonly struct DecadeTables(DynamicQuantizationMap map)
    {
        public readonly Vector256<float> Lower = Vector256.Create(map.DecadeLowerBounds), PartsPerUnit = Vector256.Create(map.PartsPerUnit),
            PartsBelow = Vector256.Create(map.PartsBelow), RankBelow = Vector256.Create(map.RankBelow), LastPartMiddle = Vector256.Create(map.LastPartMiddle),
            First = Vector256.Create(map.FirstThreshold), Top = Vector256.Create(map.TopThreshold);
    }

    /// <summary>
    /// Ranks of |y| among the map's magnitudes without a memory read: the decade from the exponent (⌊e·log₁₀2⌋, then
    /// one comparison with the decade's lower end), the position in parts within it, whose floor counts the thresholds
    /// at whole parts; plus the threshold below the decade's first midpoint and, in the top decade, the one below 1.
    /// Eight-entry tables by decade are vpermps shuffles. Lanes within <see cref="DynamicQuantizationMap.ArithmeticTolerance"/>
    /// parts of a threshold, or not below 2 (NaN, ∞ from a subnormal scale), are flagged in <paramref name="unsure"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<int> ArithmeticRanks(Vector256<float> y, in DecadeTables t, out Vector256<int> unsure)
    {
        Vector256<float> a = Vector256.Abs(y);
        Vector256<int> e = Vector256.ShiftRightLogical(a.AsInt32(), 23) - Vector256.Create(127);
        Vector256<int> d = Avx.ConvertToVector256Int32(Avx.Floor(Avx.ConvertToVector256Single(e) * Vector256.Create(0.30103f))) + Vector256.Create(7);
        d = Avx2.Min(Avx2.Max(d, Vector256.Create(-1)), Vector256.Create(6));
        d -= Avx.CompareGreaterThanOrEqual(a, Avx2.PermuteVar8x32(t.Lower, d + Vector256<int>.One)).AsInt32();
        d = Avx2.Min(Avx2.Max(d, Vector256<int>.Zero), Vector256.Create(6));
        Vector256<float> u = a * Avx2.PermuteVar8x32(t.PartsPerUnit, d) - Avx2.PermuteVar8x32(t.PartsBelow, d);
        Vector256<float> first = Avx2.PermuteVar8x32(t.First, d), top = Avx2.PermuteVar8x32(t.Top, d);
        Vector256<float> clamped = Avx.Min(Avx.Max(u, Vector256.Create(0.5f)), Avx2.PermuteVar8x32(t.LastPartMiddle, d));
        Vector256<float> whole = Avx.Floor(clamped), frac = clamped - whole;
        var tol = Vector256.Create(DynamicQuantizationMap.ArithmeticTolerance);
        unsure = (Avx.CompareLessThan(frac, tol) | Avx.CompareGreaterThan(frac, Vector256<float>.One - tol)
            | Avx.CompareLessThan(Vector256.Abs(u - first), tol) | Avx.CompareLessThan(Vector256.Abs(u - top), tol)
            | Avx.CompareNotLessThan(a, Vector256.Create(2f))).AsInt32();
        return Avx.ConvertToVector256Int32(Avx2.PermuteVar8x32(t.RankBelow, d) + whole)
            - Avx.CompareGreaterThan(u, first).AsInt32() - Avx.CompareGreaterThan(u, top).AsInt32();
    }

    /// <summary>Ranks of |y| by the bucket table: two independent AVX2 gathers and a comparison.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static Vector256<int> TableRanks(Vector256<float> y, int* ranks, float* thresholds)
    {
        Vector256<float> a = Vector256.Abs(y);
        Vector256<int> bucket = Vector256.ShiftRightArithmetic(a.AsInt32() - Vector256.Create(DynamicQuantizationMap.LowestBits), 23 - DynamicQuantizationMap.BucketMantissaBits);
        bucket = Vector256.Min(Vector256.Max(bucket, Vector256<int>.Zero), Vector256.Create(DynamicQuantizationMap.BucketCount - 1));
        Vector256<int> r = Avx2.GatherVector256(ranks, bucket, 4);
        Vector256<float> t = Avx2.GatherVector256(thresholds, bucket, 4);
        return r - Vector256.GreaterThan(a, t).AsInt32();
    }

    /// <summary>The codes of eight values from their magnitudes' ranks, packed little-endian into a ulong.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong Pack(Vector256<int> r, Vector256<float> y, bool signed)
    {
        Vector256<int> code;
        if (signed)
        {
            var zero = Vector256.Create(127);
            Vector256<int> negative = Vector256.LessThan(y, Vector256<float>.Zero).AsInt32();
            code = Vector256.ConditionalSelect(negative, zero - Vector256.Min(r, zero), zero + r);
        }
        else code = Vector256.Min(r, Vector256.Create(255));
        // Codes are 0…255, so saturating packs are exact: per 128-bit lane they leave the lane's four codes in its first
        // dword; one permute brings dwords 0 and 4 together.
        Vector256<ushort> words = Avx2.PackUnsignedSaturate(code, code);
        Vector256<byte> bytes = Avx2.PackUnsignedSaturate(words.AsInt16(), words.AsInt16());
        return Avx2.PermuteVar8x32(bytes.AsInt32(), Vector256.Create(0, 4, 0, 4, 0, 4, 0, 4)).AsUInt64().ToScalar();
    }

    private static void CheckLengths(int values, int codes, int scales)
    {
        if (codes != values || scales != Blocks(values))
            throw new ArgumentException($"{values} values need {values} codes and {Blocks(values)} scales (blocks of {BlockSize}); got {codes} and {scales}.");
    }
}

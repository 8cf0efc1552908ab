using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AiOs.Planner.Optim;

/// <summary>
/// The AVX2 pieces of the 8-bit codec: ranks of eight magnitudes by arithmetic (about twenty register operations, no
/// memory reads), codes from ranks, and packing codes to bytes. Ranks equal the scalar <see cref="DynamicQuantizationMap.Quantize"/>'s wherever a lane is not flagged as unsure; callers redo flagged
/// groups with the bucket table (<see cref="BlockwiseQuantization.TableRanks(System.Runtime.Intrinsics.Vector256{float}, DynamicQuantizationMap)"/>).
/// </summary>
internal static partial class QuantizationVectors
{
    /// <summary>Whether the vector paths can run here (every AVX2 processor has FMA, but the runtime reports them apart).</summary>
    public static bool IsSupported => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>A map's region constants in registers (see <see cref="DynamicQuantizationMap.ArithmeticRank"/>, their scalar twin).</summary>
    internal readonly struct RegionTables(DynamicQuantizationMap map)
    {
        public readonly Vector256<float> Upper = Vector256.Create(map.RegionUpper), Slope = Vector256.Create(map.RegionSlope),
            Intercept = Vector256.Create(map.RegionIntercept), High = Vector256.Create(map.RegionHigh), Base = Vector256.Create(map.RegionBase);
    }

    /// <summary>
    /// <see cref="DynamicQuantizationMap.EstimateRegion"/> on eight magnitudes a ≥ 0: per 32-bit lane the low word is
    /// bits(a) ≫ 16 and the high word 0, so vpmulhuw leaves the product's high half in the low word (0 in the high one) and
    /// the saturating subtraction clamps at 0 as the scalar max does.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> RegionEstimates(Vector256<float> a)
    {
        Vector256<ushort> top = Avx2.ShiftRightLogical(a.AsInt32(), 16).AsUInt16();
        Vector256<ushort> scaled = Avx2.MultiplyHigh(top, Vector256.Create(DynamicQuantizationMap.RegionEstimateMultiplier).AsUInt16());
        return Avx2.SubtractSaturate(scaled, Vector256.Create(DynamicQuantizationMap.RegionEstimateBias).AsUInt16()).AsInt32();
    }

    /// <summary>
    /// Ranks of |y| for |y| &lt; 2 (a finite value over its block's finite scale): the region estimated from the float's
    /// bits and corrected by one exact comparison, the position within it clamped, plus the region's base, truncated.
    /// Lanes whose position lies within the tolerance of a whole part are flagged in <paramref name="unsure"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Ranks(Vector256<float> y, in RegionTables t, out Vector256<int> unsure)
    {
        Vector256<float> a = Vector256.Abs(y);
        // No upper clamp: below 2 the estimate stays at or below 6 (checked when the map is built).
        Vector256<int> e = RegionEstimates(a);
        Vector256<int> d = e - Avx.CompareGreaterThan(a, Avx2.PermuteVar8x32(t.Upper, e)).AsInt32();
        Vector256<float> u = Fma.MultiplyAdd(a, Avx2.PermuteVar8x32(t.Slope, d), Avx2.PermuteVar8x32(t.Intercept, d));
        Vector256<float> s = Avx.Min(Avx.Max(u, Vector256.Create(0.5f)), Avx2.PermuteVar8x32(t.High, d)) + Avx2.PermuteVar8x32(t.Base, d);
        Vector256<int> r = Avx.ConvertToVector256Int32WithTruncation(s);
        unsure = Avx.CompareLessThan(s - Avx.ConvertToVector256Single(r), Vector256.Create(2 * DynamicQuantizationMap.ArithmeticTolerance)).AsInt32();
        return r;
    }

    /// <summary>A map's stochastic-rounding constants in registers (see <see cref="DynamicQuantizationMap.QuantizeStochastic"/>, their scalar twin).</summary>
    internal readonly struct StochasticTables(DynamicQuantizationMap map)
    {
        public readonly Vector256<float> Upper = Vector256.Create(map.RegionUpper), Slope = Vector256.Create(map.StochasticSlope),
            Intercept = Vector256.Create(map.StochasticIntercept), High = Vector256.Create(map.StochasticHigh),
            Lower = Vector256.Create(map.StochasticLower), UpperBend = Vector256.Create(map.StochasticUpper);
        public readonly Vector256<int> Base = Vector256.ConvertToInt32(Vector256.Create(map.StochasticBase));
    }

    /// <summary>
    /// Stochastically rounded ranks of |y| (any y: clamped to 1, NaN to 1) for uniforms <paramref name="u"/>: the region as
    /// <see cref="Ranks"/> finds it, the fractional offset within it, ⌊offset + u⌋ plus the region's base. Bit-identical to
    /// <see cref="DynamicQuantizationMap.QuantizeStochastic"/>'s ranks; no lane needs the table.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> StochasticRanks(Vector256<float> y, in StochasticTables t, Vector256<float> u)
    {
        Vector256<float> a = Avx.Min(Vector256.Abs(y), Vector256<float>.One); // vminps gives its second operand for NaN
        Vector256<int> e = RegionEstimates(a);
        Vector256<int> d = e - Avx.CompareGreaterThan(a, Avx2.PermuteVar8x32(t.Upper, e)).AsInt32();
        Vector256<float> q = Fma.MultiplyAdd(a, Avx2.PermuteVar8x32(t.Slope, d), Avx2.PermuteVar8x32(t.Intercept, d));
        Vector256<float> above = Avx.Max(q - Avx2.PermuteVar8x32(t.High, d), Vector256<float>.Zero);
        Vector256<float> f = Fma.MultiplyAdd(Avx2.PermuteVar8x32(t.Lower, d), Avx.Min(q, Vector256<float>.Zero),
            Fma.MultiplyAdd(Avx2.PermuteVar8x32(t.UpperBend, d), above, q));
        Vector256<int> r = Avx.ConvertToVector256Int32WithTruncation(Avx.RoundToNegativeInfinity(f + u)) + Avx2.PermuteVar8x32(t.Base, d);
        return Avx2.Max(r, Vector256<int>.Zero);
    }

    /// <summary>The codes of eight values from their magnitudes' ranks (as <see cref="DynamicQuantizationMap.Quantize"/>: 127 ± rank, no −1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Codes(Vector256<int> r, Vector256<float> y, bool signed)
    {
        if (!signed) return r; // at most 255 (region 7's base), and the saturating packs would cap it anyway
        // s is −1 where y < 0 (as the scalar code asks: not for −0 or NaN); negative ranks stop at 127 (code 0), positive at 128.
        Vector256<int> s = Avx.CompareLessThan(y, Vector256<float>.Zero).AsInt32();
        Vector256<int> capped = Vector256.Min(r, Vector256.Create(128) + s);
        return Vector256.Create(127) + ((capped ^ s) - s);
    }

    /// <summary>Eight codes (each 0 … 255) packed little-endian into a ulong.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Pack(Vector256<int> code)
    {
        // Codes are 0…255, so saturating packs are exact: per 128-bit lane they leave the lane's four codes in its first
        // dword; one permute brings dwords 0 and 4 together.
        Vector256<ushort> words = Avx2.PackUnsignedSaturate(code, code);
        Vector256<byte> bytes = Avx2.PackUnsignedSaturate(words.AsInt16(), words.AsInt16());
        return Avx2.PermuteVar8x32(bytes.AsInt32(), Vector256.Create(0, 4, 0, 4, 0, 4, 0, 4)).AsUInt64().ToScalar();
    }

    /// <summary>Two sets of eight codes packed at once: the first into the low ulong of the result, the second into the next.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<ulong> PackTwo(Vector256<int> first, Vector256<int> second)
    {
        // Per 128-bit lane: words [first 0–3, second 0–3], then bytes [first, second, first, second] by dword.
        Vector256<ushort> words = Avx2.PackUnsignedSaturate(first, second);
        Vector256<byte> bytes = Avx2.PackUnsignedSaturate(words.AsInt16(), words.AsInt16());
        return Avx2.PermuteVar8x32(bytes.AsInt32(), Vector256.Create(0, 4, 1, 5, 0, 4, 1, 5)).AsUInt64().GetLower();
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AiOs.Planner.Optim;

/// <summary>
/// The AVX-512 pieces of the 8-bit codec: the AVX2 pieces' operations on sixteen lanes, the 8-entry region tables read
/// through 16-lane permutes (vpermps with indices 0 … 7), so each lane's result is the AVX2 lane's bit for bit.
/// </summary>
internal static partial class QuantizationVectors
{
    /// <summary>Whether the 512-bit paths can run natively here (AVX-512 F for the float work and permutes, BW for the 16-bit multiplies).</summary>
    public static bool IsSupported512 => Vector512.IsHardwareAccelerated && Avx512F.IsSupported && Avx512BW.IsSupported && IsSupported;

    /// <summary>A map's stochastic-rounding constants in 512-bit registers, each 8-entry table twice (see <see cref="StochasticTables"/>).</summary>
    internal readonly struct StochasticTables512(DynamicQuantizationMap map)
    {
        public readonly Vector512<float> Upper = Twice(map.RegionUpper), Slope = Twice(map.StochasticSlope), Intercept = Twice(map.StochasticIntercept),
            High = Twice(map.StochasticHigh), Lower = Twice(map.StochasticLower), UpperBend = Twice(map.StochasticUpper);
        public readonly Vector512<int> Base = Vector512.ConvertToInt32(Twice(map.StochasticBase));

        private static Vector512<float> Twice(float[] table) => Vector512.Create(Vector256.Create(table), Vector256.Create(table));
    }

    /// <summary><see cref="RegionEstimates(Vector256{float})"/> on sixteen magnitudes a ≥ 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> RegionEstimates(Vector512<float> a)
    {
        Vector512<ushort> top = Avx512F.ShiftRightLogical(a.AsInt32(), 16).AsUInt16();
        Vector512<ushort> scaled = Avx512BW.MultiplyHigh(top, Vector512.Create(DynamicQuantizationMap.RegionEstimateMultiplier).AsUInt16());
        return Avx512BW.SubtractSaturate(scaled, Vector512.Create(DynamicQuantizationMap.RegionEstimateBias).AsUInt16()).AsInt32();
    }

    /// <summary>
    /// <see cref="StochasticRanks(Vector256{float}, in StochasticTables, Vector256{float})"/> on sixteen lanes;
    /// the region's correction is a masked add of 1 (the compare's mask register) where the AVX2 code subtracts the all-ones lanes.
    /// For uniforms u of at least 2⁻¹⁷ (<see cref="StochasticRounding"/>'s), whose ranks are never below 0, so the AVX2 code's
    /// floor at 0 is left out.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> StochasticRanks(Vector512<float> y, in StochasticTables512 t, Vector512<float> u)
    {
        Vector512<float> a = Avx512F.Min(Vector512.Abs(y), Vector512<float>.One); // vminps gives its second operand for NaN
        return ClampedRanks(a, RegionEstimates(a), t, u);
    }

    /// <summary>
    /// <see cref="StochasticRanks(Vector512{float}, in StochasticTables512, Vector512{float})"/> for lanes that are +0, positive
    /// or NaN (of either sign), never −0 or negative, as the second moment's √v × (1 / scale) is: there |y| is y but for a NaN's
    /// sign, which the clamp to 1 drops anyway, so the absolute value's operation is left out.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> StochasticRanksOfNonNegative(Vector512<float> y, in StochasticTables512 t, Vector512<float> u)
    {
        Vector512<float> a = Avx512F.Min(y, Vector512<float>.One);
        return ClampedRanks(a, RegionEstimates(a), t, u);
    }

    /// <summary>
    /// Both moments' ranks at once, as <see cref="StochasticRanks(Vector512{float}, in StochasticTables512, Vector512{float})"/>
    /// gives m's (<paramref name="ym"/>) and <see cref="StochasticRanksOfNonNegative"/> v's (<paramref name="yv"/>, the same
    /// conditions), bit for bit. The two region estimates share one vpmulhuw and one vpsubusw: per dword, v's magnitude's
    /// top 16 bits go in the low word and m's in the high word (its own place, so only v's need shifting), each word is
    /// estimated alone, and v's estimate stays in the low word, where vpermps reads an index's low four bits only.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StochasticRanksOfMoments(Vector512<float> ym, in StochasticTables512 mt, Vector512<float> um,
        Vector512<float> yv, in StochasticTables512 vt, Vector512<float> uv, out Vector512<int> rm, out Vector512<int> rv)
    {
        Vector512<float> am = Avx512F.Min(Vector512.Abs(ym), Vector512<float>.One), av = Avx512F.Min(yv, Vector512<float>.One);
        // High word from am, low word from av ≫ 16 (whose high word is 0): c ? b : a as one vpternlogd.
        Vector512<ushort> tops = Avx512F.TernaryLogic(Avx512F.ShiftRightLogical(av.AsUInt32(), 16), am.AsUInt32(), Vector512.Create(0xFFFF0000u), 0xD8).AsUInt16();
        Vector512<int> both = Avx512BW.SubtractSaturate(Avx512BW.MultiplyHigh(tops, Vector512.Create((ushort)DynamicQuantizationMap.RegionEstimateMultiplier)),
            Vector512.Create((ushort)DynamicQuantizationMap.RegionEstimateBias)).AsInt32();
        rm = ClampedRanks(am, Avx512F.ShiftRightLogical(both, 16), mt, um);
        rv = ClampedRanks(av, both, vt, uv);
    }

    /// <summary>
    /// The stochastic ranks of magnitudes <paramref name="a"/> already clamped to [0, 1], from their region estimates
    /// <paramref name="e"/> (<see cref="RegionEstimates(Vector512{float})"/>; only each lane's low four bits are read).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> ClampedRanks(Vector512<float> a, Vector512<int> e, in StochasticTables512 t, Vector512<float> u)
    {
        Vector512<int> d = Vector512.ConditionalSelect(Avx512F.CompareGreaterThan(a, Avx512F.PermuteVar16x32(t.Upper, e)).AsInt32(), e + Vector512<int>.One, e);
        Vector512<float> q = Avx512F.FusedMultiplyAdd(a, Avx512F.PermuteVar16x32(t.Slope, d), Avx512F.PermuteVar16x32(t.Intercept, d));
        Vector512<float> above = Avx512F.Max(q - Avx512F.PermuteVar16x32(t.High, d), Vector512<float>.Zero);
        Vector512<float> f = Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(t.Lower, d), Avx512F.Min(q, Vector512<float>.Zero),
            Avx512F.FusedMultiplyAdd(Avx512F.PermuteVar16x32(t.UpperBend, d), above, q));
        // ⌊f + u⌋ by one conversion rounding down (embedded rounding): the AVX2 code's floor then truncation (a ≤ 1 keeps NaN
        // and out-of-range sums out of it). No floor at 0 after it (the AVX2 code's vpmaxsd): with uniforms of at least 2⁻¹⁷,
        // as the hash's are, no rank is below 0 (checked when the map is built).
        return Avx512F.ConvertToVector512Int32(f + u, FloatRoundingMode.ToNegativeInfinity) + Avx512F.PermuteVar16x32(t.Base, d);
    }

    /// <summary>
    /// <see cref="Codes(Vector256{int}, Vector256{float}, bool)"/> on sixteen lanes for ranks r ≥ 0, as they go into an
    /// unsigned saturating narrowing to bytes (vpmovusdb): max(127 − r, 0) where y &lt; 0, else 127 + r, whose narrowing is
    /// 127 + min(r, 128), so the codes are the AVX2 kernel's; the choice is made by a mask register (a masked vpsubd), and
    /// the positive side's cap is left to the narrowing. Unsigned codes are the ranks themselves.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> Codes(Vector512<int> r, Vector512<float> y, bool signed)
    {
        if (!signed) return r;
        Vector512<int> zeroCode = Vector512.Create(127);
        return Avx512F.Max(Vector512.ConditionalSelect(Avx512F.CompareLessThan(y, Vector512<float>.Zero).AsInt32(), zeroCode - r, zeroCode + r), Vector512<int>.Zero);
    }
}

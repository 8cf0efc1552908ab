using System.Runtime.CompilerServices;

namespace AiOs.Planner.Optim;

/// <summary>
/// Stochastic rounding by arithmetic. A magnitude's fractional rank F(a) is the piecewise-linear function that is k at
/// the k-th magnitude and linear between neighbours; its code is ⌊F(a) + u⌋ for a uniform u, so it rounds up with
/// probability equal to its fractional position and the decoded value is unbiased. In region d (the same regions as
/// <see cref="ArithmeticRank"/>, region 7 taking region 6's constants), with q = a·slope + intercept (q = j at decade d's
/// j-th value, 0 … high = parts − 1), F = base + q + lower·min(q, 0) + upper·max(q − high, 0): below the decade's first
/// value the gap to the previous decade's last is 0.6 of a part (slope 5/3, lower = 2/3), above its last the gap to the
/// next decade's first is 3 parts (slope 1/3, upper = −2/3), or half a part to 1 in decade 6 (slope 2, upper = 1); region 0
/// spans 0 … decade 0's first value with its own lower slope. Magnitudes are clamped to 1 first (NaN and ∞ too, as the
/// nearest-code look-up ranks them at the top). Checked when the map is built: F within 10⁻³ of k at every magnitude
/// and continuous across every region boundary.
/// </summary>
public sealed partial class DynamicQuantizationMap
{
    /// <summary>Per region (0 … 7): q's slope in a.</summary>
    internal float[] StochasticSlope { get; } = new float[8];

    /// <summary>Per region: q's intercept.</summary>
    internal float[] StochasticIntercept { get; } = new float[8];

    /// <summary>Per region: q of the decade's last value (parts − 1).</summary>
    internal float[] StochasticHigh { get; } = new float[8];

    /// <summary>Per region: the extra slope below the decade's first value.</summary>
    internal float[] StochasticLower { get; } = new float[8];

    /// <summary>Per region: the extra slope above the decade's last value.</summary>
    internal float[] StochasticUpper { get; } = new float[8];

    /// <summary>Per region: the rank of the decade's first value (as a float, exact).</summary>
    internal float[] StochasticBase { get; } = new float[8];

    /// <summary>
    /// The stochastic-rounding constants for a kernel's table, 8 per region each: region upper boundaries (+∞ last),
    /// slope, intercept, high, lower bend, upper bend, base (56 floats; see <see cref="QuantizeStochastic"/>).
    /// </summary>
    public float[] StochasticConstants() =>
        [.. RegionUpper, .. StochasticSlope, .. StochasticIntercept, .. StochasticHigh, .. StochasticLower, .. StochasticUpper, .. StochasticBase];

    private void BuildStochasticTables(bool signed)
    {
        int rank = 1;
        for (int d = 0; d < 7; d++)
        {
            int parts = signed ? 1 << d : 1 << (d + 1);
            double lower = Math.Pow(10, d - 7), width = 0.9 * Math.Pow(10, d - 6) / parts;
            double slope = 1 / width, intercept = -lower / width - 0.5;
            // Region 0: from 0 (q = intercept) to the first value (q = 0); the others: from the previous decade's last value (q = −0.6).
            double lowerSlope = d == 0 ? 1 / -intercept : 1 / 0.6;
            double upperSlope = d == 6 ? 2 : 1.0 / 3;
            StochasticSlope[d] = (float)slope;
            StochasticIntercept[d] = (float)intercept;
            StochasticHigh[d] = parts - 1;
            StochasticLower[d] = (float)(lowerSlope - 1);
            StochasticUpper[d] = (float)(upperSlope - 1);
            StochasticBase[d] = rank;
            rank += parts;
        }
        StochasticSlope[7] = StochasticSlope[6]; StochasticIntercept[7] = StochasticIntercept[6]; StochasticHigh[7] = StochasticHigh[6];
        StochasticLower[7] = StochasticLower[6]; StochasticUpper[7] = StochasticUpper[6]; StochasticBase[7] = StochasticBase[6];

        for (int k = 0; k < _magnitudes.Length; k++)
            if (Math.Abs(FractionalRank(_magnitudes[k]) - k) > 1e-3)
                throw new InvalidOperationException($"Magnitude {k} ({_magnitudes[k]}) has fractional rank {FractionalRank(_magnitudes[k])}.");
        // 0 and 1 (a block's extreme) must keep their codes whatever u is (u lies in [2⁻¹⁷, 1 − 2⁻¹⁷]).
        float uLow = 1f / 131072, uHigh = 1 - uLow;
        if (QuantizeStochastic(0, uLow) != ZeroCode || QuantizeStochastic(0, uHigh) != ZeroCode || QuantizeStochastic(1, uLow) != 255)
            throw new InvalidOperationException($"Fractional ranks of 0 and 1 are {FractionalRank(0)} and {FractionalRank(1)}; they must round to themselves.");
        foreach (float t in RegionUpper.Where(float.IsFinite))
            if (Math.Abs(FractionalRank(t) - FractionalRank(MathF.BitIncrement(t))) > 1e-3)
                throw new InvalidOperationException($"The fractional rank jumps at region boundary {t}.");
        // The 512-bit kernel leaves out the ranks' floor at 0 (QuantizationVectors.StochasticRanks on sixteen lanes). Within a
        // region F does not decrease (q = fma(a, slope, intercept) does not, and each of f's three pieces grows with q), and
        // uniforms are at least uLow, so the floor never acts if each region's least magnitude ranks at 0 or above with uLow.
        for (int d = 0; d < RegionUpper.Length; d++)
        {
            float least = d == 0 ? 0f : MathF.BitIncrement(RegionUpper[d - 1]);
            if (least > 1f) break;
            float offset = FractionalOffset(least, out int region);
            if ((int)StochasticBase[region] + (int)MathF.Floor(offset + uLow) < 0)
                throw new InvalidOperationException($"Magnitude {least} (region {region}) ranks below 0 with the least uniform; the 512-bit ranks need the floor at 0 back.");
        }
    }

    /// <summary>The region of a magnitude 0 ≤ a ≤ 1 (0 … 7): how many region boundaries lie below it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal int RegionOf(float a)
    {
        int e = EstimateRegion(a);
        return a > RegionUpper[e] ? e + 1 : e;
    }

    /// <summary>F(a) − base of a's region, and that base (the scalar twin of the vector code, operation for operation).</summary>
    internal float FractionalOffset(float a, out int region)
    {
        int d = region = RegionOf(a);
        float q = MathF.FusedMultiplyAdd(a, StochasticSlope[d], StochasticIntercept[d]);
        // minps and maxps semantics (x < 0 ? x : 0), as the vector code computes them.
        float below = q < 0f ? q : 0f, beyond = q - StochasticHigh[d], above = beyond > 0f ? beyond : 0f;
        return MathF.FusedMultiplyAdd(StochasticLower[d], below, MathF.FusedMultiplyAdd(StochasticUpper[d], above, q));
    }

    /// <summary>The fractional rank F(a) of a magnitude 0 ≤ a ≤ 1 (for checks; the quantiser keeps offset and base apart).</summary>
    internal float FractionalRank(float a)
    {
        float f = FractionalOffset(a, out int d);
        return StochasticBase[d] + f;
    }

    /// <summary>
    /// The code of <paramref name="y"/> rounded stochastically by <paramref name="u"/> ∈ (0, 1): up to the next map value
    /// with probability equal to y's fractional position between its two neighbours. |y| is clamped to 1 (NaN and ±∞ too);
    /// negative values never take −1's missing code.
    /// </summary>
    public byte QuantizeStochastic(float y, float u)
    {
        float a = MathF.Abs(y);
        a = a < 1f ? a : 1f;
        float f = FractionalOffset(a, out int d);
        int r = Math.Max((int)StochasticBase[d] + (int)MathF.Floor(f + u), 0);
        if (!IsSigned) return (byte)Math.Min(r, 255);
        return y < 0 ? (byte)(127 - Math.Min(r, 127)) : (byte)(127 + Math.Min(r, 128));
    }
}

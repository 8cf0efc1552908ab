namespace AiOs.Planner.Optim;

/// <summary>
/// The arithmetic rank look-up's constants: eight regions of magnitudes, each a linear piece of the map. Region k
/// (1 … 6) runs from the threshold below decade k's first midpoint to the one below decade k+1's, and within it the
/// thresholds between midpoints lie at whole parts of the decade, so a magnitude's rank is the region's first rank
/// plus ⌊position⌋. Region 0 holds 0 and decade 0 (its thresholds mapped to whole positions 1, 2 …), region 7 the
/// magnitudes above the last threshold (rank of 1). Region boundaries are compared exactly; only positions within
/// <see cref="ArithmeticTolerance"/> of a whole part are left to the bucket table.
/// </summary>
public sealed partial class DynamicQuantizationMap
{
    /// <summary>
    /// How far (in parts of a decade) a position may lie from a whole part and still be trusted; closer ones go to the
    /// exact bucket table. The thresholds lie within a quarter of it of whole parts (checked when the map is built),
    /// and a position's float error is below 2⁻¹⁶ parts.
    /// </summary>
    internal const float ArithmeticTolerance = 1f / 2048;

    /// <summary>
    /// The region estimate is max(⌊(bits(a) ≫ 16) · RegionEstimateMultiplier / 2¹⁶⌋ − RegionEstimateBias, 0): bits(a) ≫ 16 is
    /// 128·(log₂a + 127) to within 0.09 binades (below it), so this is about ⌊0.9992·log₁₀a + 6.2⌋, stepping up to k a little
    /// past 10^(k−6.2) — inside region k's decade, which is all it needs: the estimate must be the region of a or the one below
    /// (checked at every boundary when the map is built; it is monotone in a), and one exact compare with the region's
    /// boundary finds which. Integer operations only (a shift, vpmulhuw, a saturating vpsubusw that also clamps at 0): the
    /// float estimate it replaced (two conversions and an FMA) ran on the pipes the kernel's permutes and conversions
    /// already crowd. Below 2 it stays at or below 6.
    /// </summary>
    internal const int RegionEstimateMultiplier = 154;

    /// <summary>See <see cref="RegionEstimateMultiplier"/>.</summary>
    internal const int RegionEstimateBias = 32;

    /// <summary>Per estimated region e (0 … 6): the threshold above region e, so a &gt; it moves the estimate up one (lane 7 unused).</summary>
    internal float[] RegionUpper { get; } = new float[8];

    /// <summary>Per region: parts per unit of magnitude; a magnitude's position is a·RegionSlope + RegionIntercept.</summary>
    internal float[] RegionSlope { get; } = new float[8];

    /// <summary>Per region: see <see cref="RegionSlope"/>.</summary>
    internal float[] RegionIntercept { get; } = new float[8];

    /// <summary>Per region: the highest position kept (half a part past the last whole one); the lowest is ½ everywhere.</summary>
    internal float[] RegionHigh { get; } = new float[8];

    /// <summary>Per region: the rank below its first whole position plus <see cref="ArithmeticTolerance"/>, so rank = ⌊clamped position + this⌋.</summary>
    internal float[] RegionBase { get; } = new float[8];

    private void BuildRegionTables(bool signed)
    {
        double tol = ArithmeticTolerance;
        int top = _magnitudes.Length - 1, rank = 1;
        var first = new int[8];
        var parts = new int[7];
        for (int d = 0; d < 7; d++) { parts[d] = signed ? 1 << d : 1 << (d + 1); first[d] = rank; rank += parts[d]; }
        first[7] = top;
        for (int e = 0; e < 7; e++) RegionUpper[e] = Thresholds[first[e + 1] - 1];
        RegionUpper[7] = float.PositiveInfinity;
        var whole = new List<(int Region, int Threshold, int At)>();

        // Region 0: 0 and decade 0; its thresholds 0 … parts−1 go to positions 1 … parts (two of them fix the line; with one, a/t₀).
        double slope0 = parts[0] == 1 ? 1 / (double)Thresholds[0] : 1 / ((double)Thresholds[1] - Thresholds[0]);
        double intercept0 = parts[0] == 1 ? 0 : 1 - Thresholds[0] * slope0;
        Set(0, slope0, intercept0, parts[0] + 0.5f, 0);
        for (int j = 0; j < parts[0]; j++) whole.Add((0, j, j + 1));
        for (int d = 1; d < 7; d++)
        {
            double lower = Math.Pow(10, d - 7), width = 0.9 * Math.Pow(10, d - 6) / parts[d];
            Set(d, 1 / width, -lower / width, parts[d] - 0.5f, first[d]);
            for (int j = 1; j < parts[d]; j++) whole.Add((d, first[d] + j - 1, j));
        }
        Set(7, 0, 0.5, 0.5f, top);

        foreach (var (region, threshold, at) in whole)
        {
            double position = (double)Thresholds[threshold] * RegionSlope[region] + RegionIntercept[region];
            if (Math.Abs(position - at) > tol / 4)
                throw new InvalidOperationException($"Threshold {threshold} lies at {position} in region {region}, not at {at}; the arithmetic look-up needs a wider tolerance.");
        }
        // The estimate must be the region or the one below at both sides of every boundary (it is monotone, so then everywhere).
        for (int k = 1; k <= 7; k++)
        {
            float t = RegionUpper[k - 1];
            if (EstimateRegion(t) > k - 1 || EstimateRegion(MathF.BitIncrement(t)) < k - 1)
                throw new InvalidOperationException($"The region estimate misses region {k}'s boundary {t}.");
        }
        if (EstimateRegion(MathF.BitDecrement(2f)) > 6) throw new InvalidOperationException("The region estimate passes 6 below 2.");
        // Every threshold, and the floats beside it, ranked as the table ranks them unless flagged.
        foreach (float t in Thresholds.Where(float.IsFinite))
            foreach (float a in new[] { MathF.BitDecrement(t), t, MathF.BitIncrement(t) })
                if (ArithmeticRank(a, out bool unsure) != RankOf(a) && !unsure)
                    throw new InvalidOperationException($"The arithmetic look-up ranks {a} as {ArithmeticRank(a, out _)}, the table as {RankOf(a)}.");

        void Set(int region, double slope, double intercept, float high, int below)
        {
            RegionSlope[region] = (float)slope;
            RegionIntercept[region] = (float)intercept;
            RegionHigh[region] = high;
            RegionBase[region] = below + ArithmeticTolerance;
        }
    }

    /// <summary>The estimated region of a magnitude 0 ≤ a &lt; 2 (0 … 6): its region or the one below (<see cref="RegionEstimateMultiplier"/>).</summary>
    internal static int EstimateRegion(float a) =>
        Math.Max((((BitConverter.SingleToInt32Bits(a) >>> 16) * RegionEstimateMultiplier) >> 16) - RegionEstimateBias, 0);

    /// <summary>
    /// The scalar twin of the vector look-up, operation for operation: the rank of a magnitude 0 ≤ a &lt; 2, and whether it
    /// lies so near a threshold that only the bucket table (<see cref="RankOf"/>) can say.
    /// </summary>
    internal int ArithmeticRank(float a, out bool unsure)
    {
        int e = EstimateRegion(a);
        int d = a > RegionUpper[e] ? e + 1 : e;
        float u = MathF.FusedMultiplyAdd(a, RegionSlope[d], RegionIntercept[d]);
        float s = Math.Min(Math.Max(u, 0.5f), RegionHigh[d]) + RegionBase[d];
        int r = (int)s;
        unsure = s - r < 2 * ArithmeticTolerance;
        return r;
    }
}

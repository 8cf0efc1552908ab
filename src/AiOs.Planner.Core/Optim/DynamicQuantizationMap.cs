namespace AiOs.Planner.Optim;

/// <summary>
/// The 256-value dynamic quantisation map of Dettmers et al. 2022 ("8-bit Optimizers via Block-wise Quantization",
/// after Dettmers 2015), for values normalised to [−1, 1] by their block's scale. Seven decades 10⁻⁶ … 10⁰; in
/// decade k (0 … 6) the interval [0.1, 1]·10^(k−6) is split into 2^k equal parts (signed map, both signs) or
/// 2^(k+1) (unsigned map, for Adam's second moment, which is never negative), and each part is represented by its
/// midpoint; 0 and 1 complete the 256 codes. Small magnitudes thus keep a relative precision that a linear map loses.
/// </summary>
/// <remarks>
/// Codes are indices into the ascending <see cref="Values"/>. The signed map is symmetric apart from +1 (there is no
/// −1); <see cref="BlockwiseQuantization"/> therefore scales each block by its element of largest magnitude
/// <em>with its sign</em>, so that element always maps to +1 exactly. Quantisation rounds to the nearest value
/// (ties to the smaller magnitude: a threshold is the largest float at or below the exact midpoint) through a bucket
/// table over the float's exponent and top 8 mantissa bits: every bucket holds at most one decision threshold (checked
/// when the map is built), so one table read and one comparison find the code. The AVX2 quantiser computes the same
/// code without table reads from eight regions' constants (<see cref="QuantizationVectors.Ranks"/>) and uses the bucket
/// table only for values within a small tolerance of a threshold. Decoding is a read of <see cref="Values"/> (the 8-bit Adam
/// reads a per-block copy multiplied by the block's scale, <see cref="BlockwiseAdam"/>).
/// </remarks>
public sealed partial class DynamicQuantizationMap
{
    /// <summary>Mantissa bits of |y| that pick a bucket (256 buckets per binade).</summary>
    internal const int BucketMantissaBits = 8;

    /// <summary>Binades below 1 that get buckets; smaller magnitudes all fall in bucket 0 (below the first threshold, ≈ 1.6e-7).</summary>
    private const int Binades = 26;

    /// <summary>The float bits of 2^−26, the start of bucket 1's binade.</summary>
    internal const int LowestBits = (127 - Binades) << 23;

    /// <summary>Buckets: 256 per binade from 2^−26 to 1, plus one for 1 and above.</summary>
    internal const int BucketCount = (Binades << BucketMantissaBits) + 1;

    /// <summary>The signed map (256 codes, code 127 is 0, code 255 is +1), for Adam's first moment.</summary>
    public static DynamicQuantizationMap Signed { get; } = new(signed: true);

    /// <summary>The unsigned map (256 codes, code 0 is 0, code 255 is 1), for Adam's second moment.</summary>
    public static DynamicQuantizationMap Unsigned { get; } = new(signed: false);

    private readonly float[] _values;
    private readonly float[] _magnitudes;

    private DynamicQuantizationMap(bool signed)
    {
        IsSigned = signed;
        var positive = new List<double>();
        for (int k = 0; k < 7; k++)
        {
            int parts = signed ? 1 << k : 1 << (k + 1);
            for (int j = 0; j < parts; j++) positive.Add(Math.Pow(10, k - 6) * (0.1 + 0.9 * (j + 0.5) / parts));
        }
        positive.Sort();
        var values = new List<float> { 0f };
        values.AddRange(positive.Select(p => (float)p));
        values.Add(1f);
        _magnitudes = values.ToArray();
        if (signed) values.InsertRange(0, positive.Select(p => (float)-p).Reverse());
        _values = values.ToArray();
        if (_values.Length != 256) throw new InvalidOperationException($"The dynamic map has {_values.Length} values, not 256.");
        ZeroCode = (byte)Array.IndexOf(_values, 0f);

        // Decision thresholds between neighbouring magnitudes: the largest float at or below the exact midpoint (exact in
        // double), so "a > threshold" holds exactly when a lies above the midpoint: a tie goes down, anything above up.
        // The float midpoint (a + b) / 2 rounds to nearest, sometimes up past the exact one, and then sent that float to
        // the farther value. +∞ pads the end so a rank one past the last reads safely.
        Thresholds = new float[_magnitudes.Length];
        for (int i = 0; i + 1 < _magnitudes.Length; i++) Thresholds[i] = FloatAtOrBelow(((double)_magnitudes[i] + _magnitudes[i + 1]) / 2);
        Thresholds[^1] = float.PositiveInfinity;
        BucketRanks = new int[BucketCount];
        BucketThresholds = new float[BucketCount];
        for (int b = 0; b < BucketCount; b++)
        {
            float start = b == 0 ? 0f : BitConverter.Int32BitsToSingle(LowestBits + (b << (23 - BucketMantissaBits)));
            float end = b == BucketCount - 1 ? float.PositiveInfinity : BitConverter.Int32BitsToSingle(LowestBits + ((b + 1) << (23 - BucketMantissaBits)));
            int rank = 0;
            while (Thresholds[rank] < start) rank++;
            BucketRanks[b] = rank;
            BucketThresholds[b] = Thresholds[rank];
            if (rank + 1 < Thresholds.Length && Thresholds[rank + 1] < end)
                throw new InvalidOperationException($"Bucket {b} [{start}, {end}) holds two thresholds; use more mantissa bits.");
        }
        BuildRegionTables(signed);
        BuildStochasticTables(signed);
    }

    /// <summary>The largest float not above <paramref name="x"/>.</summary>
    private static float FloatAtOrBelow(double x)
    {
        float f = (float)x;
        return f > x ? MathF.BitDecrement(f) : f;
    }

    /// <summary>Whether the map covers negative values (first moment) or only [0, 1] (second moment).</summary>
    public bool IsSigned { get; }

    /// <summary>The 256 values, ascending; a code is an index into it.</summary>
    public ReadOnlySpan<float> Values => _values;

    /// <summary>The code of 0.</summary>
    public byte ZeroCode { get; }

    /// <summary>Decision thresholds between neighbouring magnitudes (0, positives, 1), ascending, +∞ last.</summary>
    internal float[] Thresholds { get; }

    /// <summary>Per bucket of |y|: how many thresholds lie below the bucket's start.</summary>
    internal int[] BucketRanks { get; }

    /// <summary>
    /// Per bucket: the first threshold at or above its start (the only one that can lie inside it), so a look-up needs
    /// two independent reads by bucket rather than a read that depends on another.
    /// </summary>
    internal float[] BucketThresholds { get; }

    /// <summary>The value of <paramref name="code"/>.</summary>
    public float Dequantize(byte code) => _values[code];

    /// <summary>The code nearest to <paramref name="y"/> (ties to the smaller magnitude); y is clamped to the map's range; NaN is the caller's to refuse.</summary>
    public byte Quantize(float y)
    {
        float a = MathF.Abs(y);
        int r = RankOf(a);
        if (!IsSigned) return (byte)Math.Min(r, 255);
        return y < 0 ? (byte)(127 - Math.Min(r, 127)) : (byte)(127 + r);
    }

    /// <summary>How many thresholds lie strictly below the magnitude <paramref name="a"/> ≥ 0: its index among the magnitudes.</summary>
    internal int RankOf(float a)
    {
        int bucket = Math.Clamp((BitConverter.SingleToInt32Bits(a) - LowestBits) >> (23 - BucketMantissaBits), 0, BucketCount - 1);
        int r = BucketRanks[bucket];
        return a > BucketThresholds[bucket] ? r + 1 : r;
    }

    /// <summary>
    /// Half the gap between the two map values around <paramref name="y"/> (for y beyond the map's last value, the
    /// distance to it, so −1 in the signed map): the most a round-trip through this map can move y.
    /// </summary>
    public float HalfGapAt(float y)
    {
        float clamped = Math.Clamp(y, IsSigned ? -1f : 0f, 1f);
        int hi = Array.FindIndex(_values, v => v >= clamped);
        if (hi <= 0) return hi == 0 && _values[0] == clamped ? 0 : Math.Abs(clamped - _values[0]);
        return (_values[hi] - _values[hi - 1]) / 2;
    }
}

using AiOs.Planner.Optim;
using FsCheck;
using FsCheck.Fluent;

namespace AiOs.Planner.Core.Tests;

/// <summary>The dynamic map and block-wise quantisation: round-trip bounds, exact cases, the bucket look-up against a brute-force search.</summary>
public class BlockwiseQuantizationTests
{
    /// <summary>A block of values whose magnitudes spread over eight decades (so every region of the map is hit), with a length that often leaves a partial last block.</summary>
    private sealed record Values(float[] Data, bool NonNegative)
    {
        public override string ToString() => $"{Data.Length} values, non-negative {NonNegative}";
    }

    private static readonly Gen<Values> ValuesGen =
        from seed in Gen.Choose(0, int.MaxValue)
        from length in Gen.Choose(1, 3 * BlockwiseQuantization.BlockSize + 100)
        from nonNegative in Gen.Elements(true, false)
        from decades in Gen.Choose(0, 8)
        select new Values(Random(seed, length, nonNegative, decades), nonNegative);

    private static float[] Random(int seed, int length, bool nonNegative, int decades)
    {
        var rng = new Random(seed);
        var data = new float[length];
        for (int i = 0; i < length; i++)
        {
            float x = (float)(Math.Pow(10, -rng.NextDouble() * decades) * (rng.NextDouble() * 3));
            data[i] = nonNegative || rng.Next(2) == 0 ? x : -x;
        }
        return data;
    }

    private static DynamicQuantizationMap MapFor(Values v) => v.NonNegative ? DynamicQuantizationMap.Unsigned : DynamicQuantizationMap.Signed;

    private static (byte[] Codes, float[] Scales, float[] Back) RoundTrip(float[] data, DynamicQuantizationMap map)
    {
        var codes = new byte[data.Length];
        var scales = new float[BlockwiseQuantization.Blocks(data.Length)];
        BlockwiseQuantization.Quantize(data, codes, scales, map);
        var back = new float[data.Length];
        BlockwiseQuantization.Dequantize(codes, scales, back, map);
        return (codes, scales, back);
    }

    [Fact]
    public void Given_the_maps_Then_they_hold_256_ascending_values_with_0_and_1_and_the_signed_one_lacks_minus_1()
    {
        foreach (var map in new[] { DynamicQuantizationMap.Signed, DynamicQuantizationMap.Unsigned })
        {
            Assert.Equal(256, map.Values.Length);
            for (int i = 1; i < 256; i++) Assert.True(map.Values[i] > map.Values[i - 1], $"value {i}");
            Assert.Equal(0f, map.Dequantize(map.ZeroCode));
            Assert.Equal(1f, map.Values[255]);
        }
        Assert.Equal(127, DynamicQuantizationMap.Signed.ZeroCode);
        Assert.Equal(-DynamicQuantizationMap.Signed.Values[254], DynamicQuantizationMap.Signed.Values[0]);
        Assert.Equal(0, DynamicQuantizationMap.Unsigned.ZeroCode);
        // Dettmers et al.: the smallest non-zero magnitude lies in the 10⁻⁶ decade.
        Assert.InRange(DynamicQuantizationMap.Unsigned.Values[1], 1e-7f, 1e-6f);
    }

    [Fact]
    public void Given_any_values_When_quantised_block_wise_Then_each_moves_by_at_most_half_the_maps_gap_there_times_the_scale() =>
        Prop.ForAll(ValuesGen.ToArbitrary(), v =>
        {
            var map = MapFor(v);
            var (_, scales, back) = RoundTrip(v.Data, map);
            for (int i = 0; i < v.Data.Length; i++)
            {
                float s = scales[i / BlockwiseQuantization.BlockSize];
                float bound = map.HalfGapAt(v.Data[i] / s) * Math.Abs(s) + 1e-6f * Math.Abs(s);
                if (Math.Abs(back[i] - v.Data[i]) > bound) return false;
            }
            return true;
        }).QuickCheckThrowOnFailure();

    /// <summary>
    /// The nearest map value to <paramref name="y"/> by exact arithmetic (distances of two floats are exact in
    /// double here), ties to the smaller magnitude: the quantiser's documented rule, so the code is fully determined.
    /// </summary>
    private static int NearestCode(DynamicQuantizationMap map, float y)
    {
        int best = 0;
        for (int c = 1; c < 256; c++)
        {
            double d = Math.Abs((double)map.Values[c] - y), bestD = Math.Abs((double)map.Values[best] - y);
            if (d < bestD || (d == bestD && Math.Abs(map.Values[c]) < Math.Abs(map.Values[best]))) best = c;
        }
        return best;
    }

    [Fact]
    public void Given_any_values_When_the_vectorised_quantiser_runs_Then_each_code_is_the_nearest_map_value_by_brute_force() =>
        Prop.ForAll(ValuesGen.ToArbitrary(), v =>
        {
            var map = MapFor(v);
            var (codes, scales, _) = RoundTrip(v.Data, map);
            for (int i = 0; i < v.Data.Length; i++)
            {
                float s = scales[i / BlockwiseQuantization.BlockSize];
                float y = s == 0 ? 0 : v.Data[i] * (1 / s);
                if (codes[i] != NearestCode(map, y)) return false;
            }
            return true;
        }).QuickCheckThrowOnFailure();

    /// <summary>
    /// Values on and one float either side of every exact midpoint between neighbouring map values, both signs,
    /// behind a 1 at each block's start so every block's scale is 1 and y is the value itself; plus ±0, subnormals, the map's ends.
    /// </summary>
    private static float[] AdversarialValues(DynamicQuantizationMap map)
    {
        var data = new List<float> { 1f, 0f, -0f, float.Epsilon, 1e-40f, 1f, 0.99999994f };
        ReadOnlySpan<float> values = map.Values;
        for (int i = 0; i + 1 < values.Length; i++)
        {
            double mid = ((double)values[i] + values[i + 1]) / 2;
            float near = (float)mid;
            foreach (float x in new[] { near, MathF.BitDecrement(near), MathF.BitIncrement(near), MathF.BitDecrement(MathF.BitDecrement(near)), MathF.BitIncrement(MathF.BitIncrement(near)), values[i] })
                data.Add(map.IsSigned ? x : Math.Abs(x));
        }
        if (map.IsSigned) data.AddRange(data.Skip(1).Where(x => x < 1).Select(x => -x).ToList());
        for (int b = BlockwiseQuantization.BlockSize; b < data.Count; b += BlockwiseQuantization.BlockSize) data.Insert(b, 1f);
        return data.ToArray();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Given_values_at_and_beside_every_midpoint_When_quantised_Then_each_code_is_the_nearest_with_ties_to_the_smaller_magnitude(bool signed)
    {
        var map = signed ? DynamicQuantizationMap.Signed : DynamicQuantizationMap.Unsigned;
        float[] data = AdversarialValues(map);
        var (codes, scales, _) = RoundTrip(data, map);
        Assert.All(scales, s => Assert.Equal(1f, s));
        var wrong = Enumerable.Range(0, data.Length).Where(i => codes[i] != NearestCode(map, data[i]))
            .Select(i => $"y {data[i]:R} got code {codes[i]} ({map.Values[codes[i]]:R}), nearest {NearestCode(map, data[i])} ({map.Values[NearestCode(map, data[i])]:R})").Take(5).ToList();
        Assert.True(wrong.Count == 0, string.Join("; ", wrong));
        // The scalar path too (the vectorised one takes groups of eight; the tail and Quantize(float) the rest).
        Assert.All(data, y => Assert.Equal(NearestCode(map, y), map.Quantize(y)));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Given_magnitudes_near_every_threshold_and_across_the_range_When_ranked_arithmetically_Then_every_sure_lane_matches_the_table_and_few_are_unsure(bool signed)
    {
        if (!QuantizationVectors.IsSupported) return; // the arithmetic look-up is the AVX2 path's
        var map = signed ? DynamicQuantizationMap.Signed : DynamicQuantizationMap.Unsigned;
        var a = new List<float>();
        foreach (float t in map.Thresholds.Where(float.IsFinite))
            for (int k = -64; k <= 64; k++) a.Add(BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(t) + k));
        int nearThresholds = a.Count;
        var rng = new Random(7);
        for (int i = 0; i < 200_000; i++) a.Add((float)Math.Pow(10, -9 * rng.NextDouble()));
        // Its range is |y| < 2 (a finite value over a finite 1/scale); 0, subnormals and the decade ends included.
        a.AddRange([0f, -0f, float.Epsilon, 1e-40f, 1e-7f, 1e-6f, 1e-5f, 1e-4f, 1e-3f, 1e-2f, 0.1f, 1f, 1.0000001f, 1.9999999f]);
        while (a.Count % 8 != 0) a.Add(0.5f);
        var tables = new QuantizationVectors.RegionTables(map);
        int unsureRandom = 0, sure = 0;
        for (int i = 0; i < a.Count; i += 8)
        {
            var y = System.Runtime.Intrinsics.Vector256.Create(a.GetRange(i, 8).ToArray());
            var r = QuantizationVectors.Ranks(y, tables, out var unsure);
            for (int lane = 0; lane < 8; lane++)
            {
                float x = Math.Abs(a[i + lane]);
                Assert.Equal(map.ArithmeticRank(x, out bool scalarUnsure), r[lane]); // the scalar twin, operation for operation
                Assert.Equal(scalarUnsure, unsure[lane] != 0);
                if (unsure[lane] != 0) { if (i >= nearThresholds) unsureRandom++; continue; }
                sure++;
                Assert.True(map.RankOf(x) == r[lane], $"|y| {x:R}: arithmetic rank {r[lane]}, table {map.RankOf(x)}");
            }
        }
        // About 4 × tolerance × (parts per threshold) of random magnitudes are unsure; a broken look-up flags far more or far fewer.
        Assert.InRange(unsureRandom, 1, 2_000);
        Assert.True(sure > 150_000, $"only {sure} lanes were sure");
    }

    [Fact]
    public void Given_the_counterexample_FsCheck_found_When_quantised_Then_it_gets_the_nearer_upper_value()
    {
        // Signed map, codes 198 (0.20546874) and 199 (0.21953125): their midpoint in float, (a + b) / 2, rounds up to
        // 0.2125f, past the exact midpoint, and the old threshold test (|y| > t with t that float) sent y = 0.2125f down
        // to the farther value 198. FsCheck hit such a y (a float midpoint, 37 of them on each sign) now and then.
        var map = DynamicQuantizationMap.Signed;
        float y = 0.2125f;
        Assert.Equal(199, NearestCode(map, y));
        Assert.Equal(NearestCode(map, y), map.Quantize(y));
        var (codes, _, _) = RoundTrip([1f, y, y, y, y, y, y, y, y], map);
        Assert.All(codes.Skip(1), c => Assert.Equal(NearestCode(map, y), c));
    }

    [Fact]
    public void Given_any_values_When_dequantised_and_quantised_again_Then_codes_and_scales_are_unchanged() =>
        Prop.ForAll(ValuesGen.ToArbitrary(), v =>
        {
            var map = MapFor(v);
            var (codes, scales, back) = RoundTrip(v.Data, map);
            var (codes2, scales2, _) = RoundTrip(back, map);
            return codes.AsSpan().SequenceEqual(codes2) && scales.AsSpan().SequenceEqual(scales2);
        }).QuickCheckThrowOnFailure();

    [Theory]
    [InlineData(0f, 5000)]
    [InlineData(3.25f, 2048)]
    [InlineData(-0.0125f, 4099)]
    [InlineData(-7e-30f, 17)]
    public void Given_a_block_of_zeros_or_of_one_constant_When_round_tripped_Then_it_is_exact(float constant, int length)
    {
        var data = Enumerable.Repeat(constant, length).ToArray();
        Assert.Equal(data, RoundTrip(data, DynamicQuantizationMap.Signed).Back);
        if (constant >= 0) Assert.Equal(data, RoundTrip(data, DynamicQuantizationMap.Unsigned).Back);
    }

    [Fact]
    public void Given_a_partial_last_block_Then_it_gets_its_own_scale_from_its_own_values()
    {
        var data = new float[2 * BlockwiseQuantization.BlockSize + 3];
        Array.Fill(data, 100f, 0, 2 * BlockwiseQuantization.BlockSize);
        data[^3] = 0.5f; data[^2] = -0.25f; data[^1] = 0.125f;
        var (_, scales, back) = RoundTrip(data, DynamicQuantizationMap.Signed);
        Assert.Equal([100f, 100f, 0.5f], scales);
        Assert.Equal(0.5f, back[^3]);
        Assert.InRange(back[^2], -0.25f - 0.5f * 0.0071f, -0.25f + 0.5f * 0.0071f);
        Assert.InRange(back[^1], 0.125f - 0.5f * 0.0071f, 0.125f + 0.5f * 0.0071f);
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public void Given_a_non_finite_value_When_quantised_Then_it_is_refused_naming_the_element(float bad)
    {
        var data = new float[3000];
        data[2500] = bad;
        var e = Assert.Throws<ArgumentException>(() => RoundTrip(data, DynamicQuantizationMap.Signed));
        Assert.Contains("element 2500", e.Message);
    }

    [Fact]
    public void Given_lengths_that_disagree_Then_the_message_names_the_counts_needed()
    {
        var e = Assert.Throws<ArgumentException>(() => BlockwiseQuantization.Quantize(new float[2049], new byte[2049], new float[1], DynamicQuantizationMap.Signed));
        Assert.Contains("2 scales", e.Message);
    }

    [Fact]
    public void Given_a_reused_scratch_longer_than_the_values_When_second_moments_are_quantised_Then_codes_and_scales_equal_the_allocating_ones()
    {
        float[] v = Random(seed: 5, length: 2 * BlockwiseQuantization.BlockSize + 37, nonNegative: true, decades: 8);
        byte[] codes = new byte[v.Length], reused = new byte[v.Length];
        float[] scales = new float[3], reusedScales = new float[3];
        float[] roots = Enumerable.Repeat(-1f, v.Length + 9).ToArray();
        BlockwiseQuantization.QuantizeSecondMoment(v, codes, scales);
        BlockwiseQuantization.QuantizeSecondMoment(v, reused, reusedScales, roots);
        Assert.Equal(codes, reused);
        Assert.Equal(scales, reusedScales);
        var e = Assert.Throws<ArgumentException>(() => BlockwiseQuantization.QuantizeSecondMoment(v, reused, reusedScales, new float[v.Length - 1]));
        Assert.Contains("fewer than", e.Message);
    }
}

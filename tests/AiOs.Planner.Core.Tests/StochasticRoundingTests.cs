using System.Runtime.Intrinsics;
using AiOs.Planner.Optim;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// Stochastic rounding of both maps (m's and v's codes): unbiased over evenly spread uniforms at every kind of gap (inside a decade,
/// across decades, below the first value, up to 1), always one of the two neighbours, 0 and 1 kept, the vector ranks equal
/// to the scalar's bit for bit, and the counter-based uniforms reproducible.
/// </summary>
public class StochasticRoundingTests
{
    public static TheoryData<bool> Maps => new() { true, false };

    private static DynamicQuantizationMap MapOf(bool signed) => signed ? DynamicQuantizationMap.Signed : DynamicQuantizationMap.Unsigned;

    /// <summary>Points between every pair of neighbouring values (¼, ½, ¾ and a random fraction of the way) plus random magnitudes.</summary>
    private static List<float> Points(DynamicQuantizationMap Map, int seed)
    {
        var rng = new Random(seed);
        var x = new List<float>();
        for (int k = 0; k + 1 < 256; k++)
            foreach (double f in new[] { 0.25, 0.5, 0.75, rng.NextDouble() })
                x.Add((float)(Map.Values[k] + f * (Map.Values[k + 1] - Map.Values[k])));
        for (int i = 0; i < 500; i++) x.Add((float)Math.Pow(10, -8 * rng.NextDouble()) * (Map.IsSigned && rng.Next(2) == 0 ? -0.99f : 1f));
        return x;
    }

    [Theory]
    [MemberData(nameof(Maps))]
    public void Given_values_in_every_gap_When_rounded_over_all_uniforms_Then_the_mean_is_the_value_and_only_neighbours_are_used(bool signed)
    {
        DynamicQuantizationMap Map = MapOf(signed);
        foreach (float y in Points(Map, 1))
        {
            int hi = 1;
            while (Map.Values[hi] < y) hi++;
            float below = Map.Values[hi - 1], above = Map.Values[hi];
            double sum = 0;
            for (int k = 0; k < 4096; k++)
            {
                byte c = Map.QuantizeStochastic(y, (k + 0.5f) / 4096);
                Assert.True(Map.Values[c] == below || Map.Values[c] == above, $"y {y:R}: code {c} ({Map.Values[c]:R}) is not {below:R} or {above:R}");
                sum += Map.Values[c];
            }
            double gap = above - below;
            // 2¹² evenly spaced u (the mean is then exact to 2⁻¹³ of the gap) and float arithmetic in the fractional rank: 10⁻³ of the gap allows both.
            Assert.True(Math.Abs(sum / 4096 - y) <= 1e-3 * gap, $"y {y:R}: mean {sum / 4096:R}, gap {gap:R}");
        }
    }

    [Theory]
    [MemberData(nameof(Maps))]
    public void Given_the_ends_and_out_of_range_inputs_When_rounded_Then_0_stays_0_and_1_or_beyond_is_the_top_code(bool signed)
    {
        DynamicQuantizationMap Map = MapOf(signed);
        foreach (float u in new[] { 1f / 131072, 0.5f, 1 - 1f / 131072 })
        {
            Assert.Equal(Map.ZeroCode, Map.QuantizeStochastic(0f, u));
            Assert.Equal(Map.ZeroCode, Map.QuantizeStochastic(-0f, u));
            if (signed) Assert.Equal(0, Map.QuantizeStochastic(-1f, u)); // no −1: the most negative code
            if (signed) Assert.Equal(0, Map.QuantizeStochastic(float.NegativeInfinity, u));
            Assert.Equal(255, Map.QuantizeStochastic(1f, u));
            Assert.Equal(255, Map.QuantizeStochastic(1.0000001f, u));
            Assert.Equal(255, Map.QuantizeStochastic(float.PositiveInfinity, u));
            Assert.Equal(255, Map.QuantizeStochastic(float.NaN, u));
        }
    }

    [Theory]
    [MemberData(nameof(Maps))]
    public void Given_many_values_and_uniforms_When_ranked_by_the_vector_path_Then_codes_equal_the_scalar_reference(bool signed)
    {
        if (!QuantizationVectors.IsSupported) return;
        DynamicQuantizationMap Map = MapOf(signed);
        var t = new QuantizationVectors.StochasticTables(Map);
        var x = RankInputs(Map, 8);
        var rng = new Random(3);
        for (int round = 0; round < 4; round++)
            for (int i = 0; i < x.Count; i += 8)
            {
                float[] u = Enumerable.Range(0, 8).Select(_ => StochasticRounding.SecondMomentUniform((uint)rng.Next())).ToArray();
                Vector256<float> y = Vector256.Create(x.GetRange(i, 8).ToArray());
                Vector256<int> r = QuantizationVectors.Codes(QuantizationVectors.StochasticRanks(y, t, Vector256.Create(u)), y, signed);
                for (int lane = 0; lane < 8; lane++)
                    Assert.True(Math.Min(r[lane], 255) == Map.QuantizeStochastic(y[lane], u[lane]), $"y {y[lane]:R}, u {u[lane]:R}: vector {r[lane]}, scalar {Map.QuantizeStochastic(y[lane], u[lane])}");
            }
    }

    /// <summary>Points in every gap, every threshold and the floats beside it, every map value, ±0, subnormals, 1 and beyond, ±∞ and NaN; padded to whole groups of <paramref name="lanes"/>.</summary>
    private static List<float> RankInputs(DynamicQuantizationMap Map, int lanes)
    {
        var x = Points(Map, 2);
        foreach (float th in Map.Thresholds.Where(float.IsFinite)) x.AddRange([th, MathF.BitIncrement(th), MathF.BitDecrement(th)]);
        for (int k = 0; k < 256; k++) x.Add(Map.Values[k]);
        x.AddRange([0f, -0f, 1e-40f, float.Epsilon, 1f, 1.5f, float.PositiveInfinity, float.NaN, -1f, -1e-40f, float.NegativeInfinity]);
        while (x.Count % lanes != 0) x.Add(0.5f);
        return x;
    }

    [Theory]
    [MemberData(nameof(Maps))]
    public void Given_many_values_and_uniforms_When_ranked_by_the_512_bit_path_Then_codes_equal_the_scalar_reference(bool signed)
    {
        if (!QuantizationVectors.IsSupported512) return; // AVX-512 intrinsics; BlockwiseAdamKernelTests covers the kernels that run here
        DynamicQuantizationMap Map = MapOf(signed);
        var t = new QuantizationVectors.StochasticTables512(Map);
        var x = RankInputs(Map, 16);
        var rng = new Random(3);
        for (int round = 0; round < 4; round++)
            for (int i = 0; i < x.Count; i += 16)
            {
                float[] u = Enumerable.Range(0, 16).Select(_ => StochasticRounding.FirstMomentUniform((uint)rng.Next())).ToArray();
                Vector512<float> y = Vector512.Create(x.GetRange(i, 16).ToArray());
                Vector512<int> r = QuantizationVectors.Codes(QuantizationVectors.StochasticRanks(y, t, Vector512.Create(u)), y, signed);
                for (int lane = 0; lane < 16; lane++)
                    Assert.True(Math.Min(r[lane], 255) == Map.QuantizeStochastic(y[lane], u[lane]), $"y {y[lane]:R}, u {u[lane]:R}: vector {r[lane]}, scalar {Map.QuantizeStochastic(y[lane], u[lane])}");
            }
    }

    [Theory]
    [MemberData(nameof(Maps))]
    public void Given_non_negative_values_and_NaNs_When_ranked_without_the_absolute_value_Then_codes_equal_the_scalar_reference(bool signed)
    {
        if (!QuantizationVectors.IsSupported512) return; // AVX-512 intrinsics
        DynamicQuantizationMap Map = MapOf(signed);
        var t = new QuantizationVectors.StochasticTables512(Map);
        // The second moment's inputs: +0, positive (beyond 1 too) or NaN of either sign, never −0.
        var x = RankInputs(Map, 1).Select(MathF.Abs).ToList();
        x.AddRange([BitConverter.UInt32BitsToSingle(0x7FC00000u), BitConverter.UInt32BitsToSingle(0xFFC00000u), BitConverter.UInt32BitsToSingle(0xFF800001u), 3e38f]);
        while (x.Count % 16 != 0) x.Add(0.25f);
        var rng = new Random(5);
        for (int round = 0; round < 4; round++)
            for (int i = 0; i < x.Count; i += 16)
            {
                float[] u = Enumerable.Range(0, 16).Select(_ => StochasticRounding.SecondMomentUniform((uint)rng.Next())).ToArray();
                Vector512<float> y = Vector512.Create(x.GetRange(i, 16).ToArray());
                Vector512<int> r = QuantizationVectors.Codes(QuantizationVectors.StochasticRanksOfNonNegative(y, t, Vector512.Create(u)), y, signed);
                for (int lane = 0; lane < 16; lane++)
                    Assert.True(Math.Min(r[lane], 255) == Map.QuantizeStochastic(y[lane], u[lane]), $"y {y[lane]:R}, u {u[lane]:R}: vector {r[lane]}, scalar {Map.QuantizeStochastic(y[lane], u[lane])}");
            }
    }

    [Fact]
    public void Given_both_moments_When_ranked_together_Then_codes_equal_the_scalar_reference()
    {
        if (!QuantizationVectors.IsSupported512) return; // AVX-512 intrinsics
        DynamicQuantizationMap signedMap = MapOf(true), unsignedMap = MapOf(false);
        var mt = new QuantizationVectors.StochasticTables512(signedMap);
        var vt = new QuantizationVectors.StochasticTables512(unsignedMap);
        // m: any value; v: +0, positive or NaN (√v over its scale). Each list shuffled against the other, so every region of
        // one meets many of the other's in a lane (the two estimates share a register).
        var rng = new Random(9);
        var m = RankInputs(signedMap, 1);
        var v = RankInputs(unsignedMap, 1).Select(MathF.Abs).ToList();
        v.AddRange([BitConverter.UInt32BitsToSingle(0xFFC00000u), 3e38f]);
        int count = Math.Max(m.Count, v.Count) * 4 / 16 * 16;
        for (int i = 0; i < count; i += 16)
        {
            float[] ym = Enumerable.Range(0, 16).Select(_ => m[rng.Next(m.Count)]).ToArray();
            float[] yv = Enumerable.Range(0, 16).Select(_ => v[rng.Next(v.Count)]).ToArray();
            uint[] hash = Enumerable.Range(0, 16).Select(_ => (uint)rng.NextInt64(0, 1L << 32)).ToArray();
            float[] um = hash.Select(StochasticRounding.FirstMomentUniform).ToArray(), uv = hash.Select(StochasticRounding.SecondMomentUniform).ToArray();
            QuantizationVectors.StochasticRanksOfMoments(Vector512.Create(ym), mt, Vector512.Create(um), Vector512.Create(yv), vt, Vector512.Create(uv), out var rm, out var rv);
            Vector512<int> cm = QuantizationVectors.Codes(rm, Vector512.Create(ym), signed: true), cv = QuantizationVectors.Codes(rv, Vector512.Create(yv), signed: false);
            for (int lane = 0; lane < 16; lane++)
            {
                Assert.True(Math.Min(cm[lane], 255) == signedMap.QuantizeStochastic(ym[lane], um[lane]), $"m {ym[lane]:R} beside v {yv[lane]:R}, u {um[lane]:R}: vector {cm[lane]}, scalar {signedMap.QuantizeStochastic(ym[lane], um[lane])}");
                Assert.True(Math.Min(cv[lane], 255) == unsignedMap.QuantizeStochastic(yv[lane], uv[lane]), $"v {yv[lane]:R} beside m {ym[lane]:R}, u {uv[lane]:R}: vector {cv[lane]}, scalar {unsignedMap.QuantizeStochastic(yv[lane], uv[lane])}");
            }
        }
    }

    [Fact]
    public void Given_keys_When_uniforms_are_drawn_on_sixteen_lanes_or_one_by_one_Then_they_agree()
    {
        // Many keys, the ends of the counter's range among them (the 512-bit path folds the hash's last xor-shift into the
        // uniforms' bit operations, so every bit of the low and high halves must come out as the scalar hash's).
        var rng = new Random(11);
        var keys = new List<uint> { StochasticRounding.BlockKey(5, StochasticRounding.BlockSeed(7, 4099)), 0, uint.MaxValue - 7, 0xFFF8u, 0x8000_0000u };
        for (int j = 0; j < 200; j++) keys.Add((uint)rng.NextInt64(0, 1L << 32));
        foreach (uint key in keys)
        {
            var (m, v) = StochasticRounding.ElementUniforms(Vector512.Create(key) + Vector512.Create(0u, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
            for (int i = 0; i < 16; i++)
            {
                Assert.Equal(StochasticRounding.FirstMomentUniform(StochasticRounding.ElementHash(key, i)), m[i]);
                Assert.Equal(StochasticRounding.SecondMomentUniform(StochasticRounding.ElementHash(key, i)), v[i]);
            }
        }
    }

    [Fact]
    public void Given_a_key_When_uniforms_are_drawn_on_eight_lanes_or_one_by_one_Then_they_agree_and_lie_strictly_inside_0_1()
    {
        uint key = StochasticRounding.BlockKey(17, StochasticRounding.BlockSeed(3, 70_001));
        Assert.NotEqual(key, StochasticRounding.BlockKey(18, StochasticRounding.BlockSeed(3, 70_001)));
        Assert.NotEqual(key, StochasticRounding.BlockKey(17, StochasticRounding.BlockSeed(4, 70_001)));
        Assert.NotEqual(key, StochasticRounding.BlockKey(17, StochasticRounding.BlockSeed(3, 70_002)));
        var (m, v) = StochasticRounding.Uniforms(StochasticRounding.Mix(Vector256.Create(key) + Vector256.Create(0u, 1, 2, 3, 4, 5, 6, 7)));
        for (int i = 0; i < 8; i++)
        {
            Assert.Equal(StochasticRounding.FirstMomentUniform(StochasticRounding.ElementHash(key, i)), m[i]);
            Assert.Equal(StochasticRounding.SecondMomentUniform(StochasticRounding.ElementHash(key, i)), v[i]);
        }
        Assert.Equal(1f / 131072, StochasticRounding.SecondMomentUniform(0));
        Assert.Equal(1 - 1f / 131072, StochasticRounding.FirstMomentUniform(uint.MaxValue));
        double mean = Enumerable.Range(0, 2048).Average(i => StochasticRounding.FirstMomentUniform(StochasticRounding.ElementHash(key, i)));
        Assert.InRange(mean, 0.47, 0.53);
    }
}

using System.Runtime.Intrinsics;
using AiOs.Planner.Optim;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The vectorised 8-bit codec against the scalar reference (<see cref="DynamicQuantizationMap.Quantize"/>), bit for bit: the
/// region estimate, and blocks of random values, values on and beside every threshold (ties),
/// ±0, subnormals, and the NaN and ±∞ a subnormal scale makes.
/// </summary>
public class QuantizationVectorsTests
{
    public static TheoryData<bool> Maps => new() { true, false };

    private static DynamicQuantizationMap Map(bool signed) => signed ? DynamicQuantizationMap.Signed : DynamicQuantizationMap.Unsigned;

    /// <summary>The region of a magnitude by definition: how many region boundaries lie below it (no estimate involved).</summary>
    private static int TrueRegion(DynamicQuantizationMap map, float a) => map.RegionUpper.Take(7).Count(t => a > t);

    [Theory]
    [MemberData(nameof(Maps))]
    public void Given_magnitudes_below_2_When_their_region_is_estimated_Then_it_is_their_region_or_the_one_below_and_the_vector_estimate_equals_the_scalar(bool signed)
    {
        var map = Map(signed);
        var rng = new Random(signed ? 1 : 2);
        var a = new List<float>();
        for (int i = 0; i < 200_000; i++) a.Add((float)(Math.Pow(10, -12 * rng.NextDouble()) * 2 * rng.NextDouble()));
        foreach (float t in map.RegionUpper.Take(7).Concat(map.Thresholds.Where(float.IsFinite)))
            for (int k = -3; k <= 3; k++) a.Add(BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(t) + k));
        a.AddRange([0f, float.Epsilon, 1e-40f, 1.1754942e-38f, 1e-7f, 1e-6f, 1f, 0.99999994f, 1.0000001f, 1.9999999f]);
        foreach (float x in a.Where(x => x < 2))
        {
            int estimate = DynamicQuantizationMap.EstimateRegion(x), region = TrueRegion(map, x);
            Assert.True(estimate == region || estimate == region - 1, $"{x:R}: estimate {estimate}, region {region}");
        }
        if (!QuantizationVectors.IsSupported) return;
        float[] xs = a.Where(x => x < 2).ToArray();
        for (int i = 0; i + 8 <= xs.Length; i += 8)
        {
            Vector256<int> e = QuantizationVectors.RegionEstimates(Vector256.Create(xs, i));
            for (int lane = 0; lane < 8; lane++) Assert.Equal(DynamicQuantizationMap.EstimateRegion(xs[i + lane]), e[lane]);
        }
    }

    /// <summary>Random magnitudes over nine decades, every threshold and the 3 floats either side of it (ties included), ±0 and subnormals, both signs where the map has them.</summary>
    private static float[] Inputs(DynamicQuantizationMap map, int seed)
    {
        var rng = new Random(seed);
        var x = new List<float>();
        for (int i = 0; i < 20_000; i++) x.Add((float)(Math.Pow(10, -9 * rng.NextDouble()) * rng.NextDouble()));
        foreach (float t in map.Thresholds.Where(float.IsFinite))
            for (int k = -3; k <= 3; k++) x.Add(BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(t) + k));
        x.AddRange([0f, -0f, float.Epsilon, 1e-40f, 1.1754942e-38f, 1f, 0.99999994f, 1e-7f, 1e-6f]);
        if (map.IsSigned) x = x.Select(v => rng.Next(2) == 0 ? v : -v).ToList();
        return x.Where(v => Math.Abs(v) < 1).OrderBy(_ => rng.Next()).ToArray(); // each block's extreme is put in by the test
    }

    [Theory]
    [InlineData(true, 1f)]
    [InlineData(false, 1f)]
    [InlineData(true, -1f)]
    [InlineData(true, 3.7e-3f)]
    [InlineData(false, 2.5e-9f)]
    [InlineData(true, 0f)]
    [InlineData(false, 1e-39f)] // subnormal: 1/scale is ∞, so y is ±∞ or NaN (0 × ∞), as the scalar code defines them
    [InlineData(true, -1e-40f)]
    public void Given_values_over_the_range_and_at_every_threshold_When_quantised_by_the_vector_path_Then_codes_equal_the_scalar_reference(bool signed, float scale)
    {
        var map = Map(signed);
        // (Halved for a subnormal scale, whose few bits would otherwise round some to it and tie with it.)
        float factor = scale == 0 ? 1 : float.IsSubnormal(scale) ? Math.Abs(scale) / 2 : Math.Abs(scale);
        var x = Inputs(map, seed: signed ? 1 : 2).Select(v => v * factor).ToList();
        if (scale == 0) x = x.Select(_ => 0f).ToList();
        // Each block's extreme is the scale, so QuantizeBlock sees it (1/scale infinite for a subnormal one).
        for (int b = 0; b < x.Count; b += BlockwiseQuantization.BlockSize) x.Insert(b, scale);
        var codes = new byte[x.Count];
        var scales = new float[BlockwiseQuantization.Blocks(x.Count)];
        BlockwiseQuantization.Quantize(x.ToArray(), codes, scales, map);
        Assert.All(scales, s => Assert.Equal(scale, s));
        float inv = scale == 0 ? 0 : 1 / scale;
        var wrong = Enumerable.Range(0, x.Count).Where(i => codes[i] != map.Quantize(x[i] * inv))
            .Select(i => $"x {x[i]:R}: vector {codes[i]}, scalar {map.Quantize(x[i] * inv)}").Take(5).ToList();
        Assert.True(wrong.Count == 0, string.Join("; ", wrong));
    }
}

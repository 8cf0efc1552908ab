using AiOs.Planner.Optim;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// 8-bit AdamW must follow fp32 AdamW: the moments are rounded, the update rule is the same. With gradients spanning four
/// decades inside a block (v eight), v coded directly lost its small values to the map's zero (seven decades deep), so
/// those elements took steps up to 30× too large (fp32 vs 8-bit parameters: cosine 0.53, norm ratio 7.2 after 10 steps);
/// coded by its square root it keeps them (0.995, 0.995).
/// </summary>
public sealed class BlockwiseAdamTrackingTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(10)]
    [InlineData(200)]
    public void Given_the_same_gradients_When_stepping_fp32_and_8bit_Then_the_updates_agree_in_size_and_direction(int steps)
    {
        const int n = 4 * 2048;
        var rng = new Random(7);
        var hp = new AdamHyperParameters { LearningRate = 1e-3f, WeightDecay = 0f };
        float[] p32 = new float[n], p8 = new float[n], m = new float[n], v = new float[n], g = new float[n];
        byte[] mc = new byte[n], vc = new byte[n];
        long blocks = BlockwiseQuantization.Blocks(n);
        float[] ms = new float[blocks], vs = new float[blocks];
        // Zero codes must mean zero moments: start from what a fresh 8-bit state holds.
        BlockwiseQuantization.Quantize(new float[n], mc, ms, DynamicQuantizationMap.Signed);
        BlockwiseQuantization.Quantize(new float[n], vc, vs, DynamicQuantizationMap.Unsigned);
        // Per element a gradient scale spanning four decades, as across a layer's rows.
        double[] scale = Enumerable.Range(0, n).Select(_ => Math.Pow(10, -2 - 4 * rng.NextDouble())).ToArray();
        for (int t = 1; t <= steps; t++)
        {
            for (int i = 0; i < n; i++) g[i] = (float)(scale[i] * (rng.NextDouble() * 2 - 1 + 0.3));
            CpuAdam.Step(p32, g, m, v, t, hp);
            BlockwiseAdam.Step(p8, g, mc, ms, vc, vs, t, hp);
        }
        double dot = 0, n32 = 0, n8 = 0;
        for (int i = 0; i < n; i++) { dot += p32[i] * (double)p8[i]; n32 += p32[i] * (double)p32[i]; n8 += p8[i] * (double)p8[i]; }
        double cosine = dot / Math.Sqrt(n32 * n8), ratio = Math.Sqrt(n8 / n32);

        Assert.InRange(cosine, 0.99, 1.0);
        Assert.InRange(ratio, 0.97, 1.03);
    }
}

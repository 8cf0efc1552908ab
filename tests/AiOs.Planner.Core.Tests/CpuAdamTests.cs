using AiOs.Planner.Optim;

namespace AiOs.Planner.Core.Tests;

public class CpuAdamTests
{
    private static readonly AdamHyperParameters Hp = new() { LearningRate = 1e-2f, WeightDecay = 0.1f };

    /// <summary>Textbook AdamW in double precision, element by element, written from the formula rather than the optimised code.</summary>
    private static void Reference(double[] p, double[] g, double[] m, double[] v, int step, AdamHyperParameters hp)
    {
        for (int i = 0; i < p.Length; i++)
        {
            p[i] -= hp.LearningRate * hp.WeightDecay * p[i];
            m[i] = hp.Beta1 * m[i] + (1 - hp.Beta1) * g[i];
            v[i] = hp.Beta2 * v[i] + (1 - hp.Beta2) * g[i] * g[i];
            double mHat = m[i] / (1 - Math.Pow(hp.Beta1, step));
            double vHat = v[i] / (1 - Math.Pow(hp.Beta2, step));
            p[i] -= hp.LearningRate * mHat / (Math.Sqrt(vHat) + hp.Epsilon);
        }
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(37, 1)]
    [InlineData(300_001, 4)]
    public void Given_random_states_When_stepped_five_times_Then_it_matches_the_scalar_reference(int n, int threads)
    {
        var rng = new Random(n);
        float[] p = new float[n], m = new float[n], v = new float[n];
        double[] rp = new double[n], rm = new double[n], rv = new double[n];
        for (int i = 0; i < n; i++) rp[i] = p[i] = (float)(rng.NextDouble() * 2 - 1);

        for (int step = 1; step <= 5; step++)
        {
            float[] g = new float[n];
            double[] rg = new double[n];
            for (int i = 0; i < n; i++) rg[i] = g[i] = (float)(rng.NextDouble() - 0.5) * step;
            CpuAdam.Step(p, g, m, v, step, Hp, threads);
            Reference(rp, rg, rm, rv, step, Hp);
        }

        for (int i = 0; i < n; i++)
        {
            Assert.Equal(rp[i], p[i], 1e-5);
            Assert.Equal(rm[i], m[i], 1e-5);
            Assert.Equal(rv[i], v[i], 1e-5);
        }
    }

    [Theory]
    [InlineData(37, 1)]
    [InlineData(300_001, 4)]
    public void Given_a_bf16_output_When_stepped_Then_it_updates_as_without_and_holds_each_result_rounded_to_nearest_even(int n, int threads)
    {
        var rng = new Random(7);
        float[] p = new float[n], g = new float[n], m = new float[n], v = new float[n];
        for (int i = 0; i < n; i++) { p[i] = (float)(rng.NextDouble() * 2 - 1); g[i] = (float)(rng.NextDouble() - 0.5); }
        p[3] = float.NaN;
        float[] p2 = (float[])p.Clone(), m2 = new float[n], v2 = new float[n];
        var bf16 = new ushort[n];

        CpuAdam.Step(p, g, m, v, bf16, 1, Hp, threads);
        CpuAdam.Step(p2, g, m2, v2, 1, Hp, threads);

        Assert.Equal(p2, p);
        Assert.Equal(m2, m);
        for (int i = 0; i < n; i++)
        {
            if (float.IsNaN(p[i])) { Assert.Equal(0x7FC0, bf16[i]); continue; }
            // Round to nearest even by hand: the two bf16 neighbours and the exact midpoint tie rule.
            uint bits = BitConverter.SingleToUInt32Bits(p[i]);
            uint down = bits & 0xFFFF0000u, rest = bits & 0xFFFFu;
            uint expected = rest > 0x8000u || (rest == 0x8000u && ((bits >> 16) & 1u) == 1u) ? (down >> 16) + 1 : down >> 16;
            Assert.Equal((ushort)expected, bf16[i]);
        }
    }

    [Theory]
    [InlineData(37, 1)]
    [InlineData(300_001, 1)] // several chunks on one thread: each cast right after its chunk's update
    [InlineData(300_001, 4)]
    public void Given_an_fp16_output_When_stepped_Then_it_updates_as_without_and_holds_each_result_cast_as_a_half(int n, int threads)
    {
        var rng = new Random(8);
        float[] p = new float[n], g = new float[n], m = new float[n], v = new float[n];
        // Weights beyond fp16's range and below its normals as well: they overflow to infinity or round to subnormals.
        for (int i = 0; i < n; i++) { p[i] = (float)((rng.NextDouble() * 2 - 1) * Math.Pow(2, rng.Next(-30, 18))); g[i] = (float)(rng.NextDouble() - 0.5); }
        float[] p2 = (float[])p.Clone(), m2 = new float[n], v2 = new float[n];
        var fp16 = new Half[n];

        CpuAdam.Step(p, g, m, v, fp16, 1, Hp, threads);
        CpuAdam.Step(p2, g, m2, v2, 1, Hp, threads);

        Assert.Equal(p2, p);
        Assert.Equal(m2, m);
        // .NET's scalar cast rounds to nearest even, as PyTorch's does.
        for (int i = 0; i < n; i++) Assert.Equal(BitConverter.HalfToUInt16Bits((Half)p[i]), BitConverter.HalfToUInt16Bits(fp16[i]));
    }

    [Fact]
    public void Given_a_positive_gradient_When_stepped_once_Then_the_parameter_moves_down_by_about_the_learning_rate()
    {
        float[] p = [1f], g = [0.5f], m = [0f], v = [0f];
        CpuAdam.Step(p, g, m, v, 1, new AdamHyperParameters { LearningRate = 0.1f, WeightDecay = 0 });
        // First step: m̂ = g, v̂ = g², so the update is lr · g/|g| = 0.1.
        Assert.Equal(0.9f, p[0], 1e-5f);
    }

    [Fact]
    public void Given_spans_of_different_lengths_When_stepped_Then_it_is_refused()
    {
        Assert.Throws<ArgumentException>(() => CpuAdam.Step(new float[4], new float[3], new float[4], new float[4], 1, Hp));
    }
}

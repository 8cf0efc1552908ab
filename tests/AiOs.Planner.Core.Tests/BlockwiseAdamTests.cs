using AiOs.Planner.Optim;

namespace AiOs.Planner.Core.Tests;

/// <summary>8-bit AdamW against the fp32 <see cref="CpuAdam"/>: first step exact, moment error per block bounded, trajectories alike, non-finite gradients reported.</summary>
public class BlockwiseAdamTests
{
    private static readonly AdamHyperParameters Hp = new() { LearningRate = 1e-2f, WeightDecay = 0.1f };

    /// <summary>8-bit state of n parameters, all moments zero (as a fresh optimizer starts).</summary>
    private sealed class State(int n)
    {
        public float[] P = new float[n];
        public byte[] MCodes = Enumerable.Repeat(DynamicQuantizationMap.Signed.ZeroCode, n).ToArray();
        public byte[] VCodes = Enumerable.Repeat(DynamicQuantizationMap.Unsigned.ZeroCode, n).ToArray();
        public float[] MScales = new float[BlockwiseQuantization.Blocks(n)];
        public float[] VScales = new float[BlockwiseQuantization.Blocks(n)];

        public BlockwiseAdamReport Step(float[] g, int step, AdamHyperParameters hp, int threads = 1, float gradScale = 1f) =>
            BlockwiseAdam.Step(P, g, MCodes, MScales, VCodes, VScales, step, hp, gradScale, threads);

        public float[] M() => Dequantize(MCodes, MScales, DynamicQuantizationMap.Signed);
        public float[] V()
        {
            var values = new float[VCodes.Length];
            BlockwiseQuantization.DequantizeSecondMoment(VCodes, VScales, values);
            return values;
        }

        private static float[] Dequantize(byte[] codes, float[] scales, DynamicQuantizationMap map)
        {
            var values = new float[codes.Length];
            BlockwiseQuantization.Dequantize(codes, scales, values, map);
            return values;
        }
    }

    private static float[] Gradient(Random rng, int n, float spread) =>
        Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() - 0.5) * spread * Math.Pow(10, -2 * rng.NextDouble()))).ToArray();

    [Theory]
    [InlineData(7)]
    [InlineData(2048)]
    [InlineData(70_001)]
    public void Given_fresh_state_When_stepped_once_Then_parameters_equal_fp32_CpuAdams_exactly(int n)
    {
        var rng = new Random(n);
        var q = new State(n);
        float[] p = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        p.CopyTo(q.P, 0);
        float[] g = Gradient(rng, n, 1);
        CpuAdam.Step(p, g, new float[n], new float[n], 1, Hp);
        Assert.True(q.Step(g, 1, Hp, threads: 2).AllFinite);
        Assert.Equal(p, q.P);
    }

    [Fact]
    public void Given_random_gradients_for_30_steps_Then_each_blocks_moments_stay_within_the_documented_bound_of_fp32s()
    {
        const int n = 3 * BlockwiseQuantization.BlockSize + 517;
        var rng = new Random(15);
        var q = new State(n);
        float[] p = new float[n], m = new float[n], v = new float[n];
        for (int step = 1; step <= 30; step++)
        {
            float[] g = Gradient(rng, n, 1);
            CpuAdam.Step(p, g, m, v, step, Hp);
            q.Step(g, step, Hp);
            float[] qm = q.M(), qv = q.V();
            for (int start = 0; start < n; start += BlockwiseQuantization.BlockSize)
            {
                int len = Math.Min(BlockwiseQuantization.BlockSize, n - start);
                // Step 1 (from exact zeros) is one stochastic rounding, less than a whole gap of the top decade: 0.9/64 signed; v is
                // coded by √v, so twice 0.9/128 of the block's largest v, plus the gap's square. Later steps carry earlier rounding
                // forward (decaying by β1, β2); 5% fails a broken map or scale while allowing the drift. v's stochastic errors are
                // unbiased but walk (β2 = 0.999 barely damps them): the worst of a block's 2,048 reached 5.2% at step 30, so v is allowed 8%.
                double mBound = step == 1 ? 0.9 / 64 * 1.001 : 0.05, vBound = step == 1 ? (2 * 0.9 / 128 + Math.Pow(0.9 / 128, 2)) * 1.001 : 0.08;
                Assert.True(BlockError(m, qm, start, len) <= mBound, $"step {step}, block {start / BlockwiseQuantization.BlockSize}: m error {BlockError(m, qm, start, len):E2} of the block's largest |m|");
                Assert.True(BlockError(v, qv, start, len) <= vBound, $"step {step}, block {start / BlockwiseQuantization.BlockSize}: v error {BlockError(v, qv, start, len):E2} of the block's largest v");
            }
        }
    }

    /// <summary>max |exact − quantised| over the block, relative to the block's largest |exact|.</summary>
    private static double BlockError(float[] exact, float[] quantised, int start, int len)
    {
        double worst = 0, scale = 0;
        for (int i = start; i < start + len; i++)
        {
            worst = Math.Max(worst, Math.Abs(exact[i] - quantised[i]));
            scale = Math.Max(scale, Math.Abs(exact[i]));
        }
        return scale == 0 ? worst : worst / scale;
    }

    [Fact]
    public void Given_a_quadratic_When_minimised_100_steps_with_8bit_and_fp32_state_Then_both_converge_alike()
    {
        const int n = 5000;
        var rng = new Random(3);
        double[] curvature = Enumerable.Range(0, n).Select(_ => Math.Pow(10, rng.NextDouble() * 2 - 1)).ToArray();
        float[] target = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        double Loss(float[] x) => Enumerable.Range(0, n).Sum(i => 0.5 * curvature[i] * (x[i] - target[i]) * (x[i] - target[i]));
        float[] Grad(float[] x) => Enumerable.Range(0, n).Select(i => (float)(curvature[i] * (x[i] - target[i]))).ToArray();
        var hp = new AdamHyperParameters { LearningRate = 0.05f, WeightDecay = 0f };
        float[] p = new float[n], m = new float[n], v = new float[n];
        var q = new State(n);
        double initial = Loss(p);
        for (int step = 1; step <= 100; step++)
        {
            CpuAdam.Step(p, Grad(p), m, v, step, hp);
            Assert.True(q.Step(Grad(q.P), step, hp).AllFinite);
            if (step % 25 != 0) continue;
            // Measured: the 8-bit loss stays within 0.8–1.3× of fp32's at every quarter (lr 0.01–0.05).
            double ratio = Loss(q.P) / Loss(p);
            Assert.True(ratio is > 0.5 and < 2, $"step {step}: 8-bit loss {Loss(q.P):E3} vs fp32 {Loss(p):E3}");
        }
        Assert.True(Loss(p) < 1e-3 * initial, $"fp32 loss {Loss(p)} of initial {initial}");
        Assert.True(Loss(q.P) < 1e-3 * initial, $"8-bit loss {Loss(q.P)} of initial {initial}");
    }

    [Theory]
    [InlineData(float.NaN, 5000)]
    [InlineData(float.PositiveInfinity, 4096)]
    [InlineData(float.NegativeInfinity, 6143)]
    [InlineData(1e25f, 4200)]
    public void Given_a_non_finite_gradient_or_square_When_stepped_Then_its_block_is_left_as_it_was_and_reported(float bad, int at)
    {
        const int n = 3 * BlockwiseQuantization.BlockSize + 5;
        var rng = new Random(1);
        var q = new State(n);
        q.Step(Gradient(rng, n, 1), 1, Hp);
        float[] p = (float[])q.P.Clone(), ms = (float[])q.MScales.Clone(), vs = (float[])q.VScales.Clone();
        byte[] mc = (byte[])q.MCodes.Clone(), vc = (byte[])q.VCodes.Clone();
        float[] g = Gradient(rng, n, 1);
        g[at] = bad;
        BlockwiseAdamReport report = q.Step(g, 2, Hp, threads: 2);
        Assert.Equal(new BlockwiseAdamReport(1, 2 * BlockwiseQuantization.BlockSize), report);
        Range block2 = (2 * BlockwiseQuantization.BlockSize)..(3 * BlockwiseQuantization.BlockSize);
        Assert.Equal(p[block2], q.P[block2]);
        Assert.Equal(mc[block2], q.MCodes[block2]);
        Assert.Equal(vc[block2], q.VCodes[block2]);
        Assert.Equal(ms[2], q.MScales[2]);
        Assert.Equal(vs[2], q.VScales[2]);
        Assert.NotEqual(p[..100], q.P[..100]);
        Assert.NotEqual(p[^3..], q.P[^3..]);
    }

    /// <summary>
    /// The step element by element through the scalar reference: table values (v by its square root), fp32 update in the
    /// kernel's operation order, <see cref="DynamicQuantizationMap.QuantizeStochastic"/> per m and √v with the uniforms of (step, block index and span length, index in block); a block with a non-finite v is left as it was.
    /// </summary>
    private static void ReferenceStep(State s, float[] g, int step, AdamHyperParameters hp, float gradScale)
    {
        DynamicQuantizationMap mMap = DynamicQuantizationMap.Signed, vMap = DynamicQuantizationMap.Unsigned;
        double bias1 = 1 - Math.Pow(hp.Beta1, step), bias2 = 1 - Math.Pow(hp.Beta2, step);
        float decay = (float)(1 - (double)hp.LearningRate * hp.WeightDecay), stepSize = (float)(hp.LearningRate / bias1);
        float invSqrtBias2 = (float)(1 / Math.Sqrt(bias2)), c1 = 1 - hp.Beta1, c2 = 1 - hp.Beta2;
        for (int b = 0, start = 0; start < g.Length; b++, start += BlockwiseQuantization.BlockSize)
        {
            int n = Math.Min(BlockwiseQuantization.BlockSize, g.Length - start);
            float[] m = new float[n], v = new float[n];
            for (int i = 0; i < n; i++)
            {
                float gi = g[start + i] * gradScale;
                m[i] = hp.Beta1 * (mMap.Values[s.MCodes[start + i]] * s.MScales[b]) + c1 * gi;
                float r = vMap.Values[s.VCodes[start + i]] * s.VScales[b];
                v[i] = hp.Beta2 * (r * r) + c2 * gi * gi;
            }
            if (!v.All(x => x < float.PositiveInfinity)) continue;
            float mScale = m.Max() >= -m.Min() ? Math.Max(0, m.Max()) : m.Min(), vScale = MathF.Sqrt(Math.Max(0, v.Max()));
            float mInv = mScale == 0 ? 0 : 1 / mScale, vInv = vScale == 0 ? 0 : 1 / vScale;
            for (int i = 0; i < n; i++)
            {
                float root = MathF.Sqrt(v[i]);
                s.P[start + i] = s.P[start + i] * decay - stepSize * m[i] / (root * invSqrtBias2 + hp.Epsilon);
                uint h = StochasticRounding.ElementHash(StochasticRounding.BlockKey(step, StochasticRounding.BlockSeed(b, g.Length)), i);
                s.MCodes[start + i] = mMap.QuantizeStochastic(m[i] * mInv, StochasticRounding.FirstMomentUniform(h));
                s.VCodes[start + i] = vMap.QuantizeStochastic(root * vInv, StochasticRounding.SecondMomentUniform(h));
            }
            (s.MScales[b], s.VScales[b]) = (mScale, vScale);
        }
    }

    [Theory]
    [InlineData(70_001, 1)]
    [InlineData(70_001, 2)]
    [InlineData(2048 * 3 + 5, 3)]
    [InlineData(13, 1)] // fewer whole groups than the look-ahead
    [InlineData(2048 + 37, 1)] // a last block of exactly the look-ahead's groups and a tail
    public void Given_random_gradients_When_stepped_by_the_vector_kernel_Then_state_equals_the_scalar_reference_bit_for_bit(int n, int threads)
    {
        var rng = new Random(n + threads);
        State fast = new(n), reference = new(n);
        float[] p0 = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        p0.CopyTo(fast.P, 0);
        p0.CopyTo(reference.P, 0);
        for (int step = 1; step <= 6; step++)
        {
            // Spreads from 10⁻⁹ to 10, zeros, subnormals, and (step 4) a NaN that must skip its block in both.
            float[] g = Gradient(rng, n, (float)Math.Pow(10, 1 - 2 * step));
            for (int i = 0; i < n; i += 97) g[i] = 0;
            for (int i = 5; i < n; i += 1013) g[i] = 1e-41f;
            if (step == 4) g[n / 2] = float.NaN;
            fast.Step(g, step, Hp, threads, gradScale: 0.75f);
            ReferenceStep(reference, g, step, Hp, 0.75f);
            Assert.Equal(reference.MScales, fast.MScales);
            Assert.Equal(reference.VScales, fast.VScales);
            Assert.True(reference.MCodes.AsSpan().SequenceEqual(fast.MCodes), $"step {step}: m codes differ");
            Assert.True(reference.VCodes.AsSpan().SequenceEqual(fast.VCodes), $"step {step}: v codes differ");
            Assert.Equal(reference.P, fast.P);
        }
    }

    [Fact]
    public void Given_the_same_state_When_stepped_on_one_or_four_threads_Then_results_are_identical()
    {
        const int n = 200_000;
        var rng = new Random(9);
        State a = new(n), b = new(n);
        for (int step = 1; step <= 3; step++)
        {
            float[] g = Gradient(rng, n, 2);
            a.Step(g, step, Hp, threads: 1, gradScale: 0.5f);
            b.Step(g, step, Hp, threads: 4, gradScale: 0.5f);
        }
        Assert.Equal(a.P, b.P);
        Assert.Equal(a.MCodes, b.MCodes);
        Assert.Equal(a.VScales, b.VScales);
    }

    [Fact]
    public void Given_a_clipping_factor_When_stepped_Then_it_equals_a_step_on_the_scaled_gradient()
    {
        const int n = 3000;
        var rng = new Random(4);
        State a = new(n), b = new(n);
        float[] g = Gradient(rng, n, 4);
        a.Step(g, 1, Hp, gradScale: 0.25f);
        b.Step(g.Select(x => x * 0.25f).ToArray(), 1, Hp);
        Assert.Equal(b.P, a.P);
        Assert.Equal(b.MCodes, a.MCodes);
    }

    [Fact]
    public void Given_mismatched_scales_Then_the_message_names_what_is_needed()
    {
        var e = Assert.Throws<ArgumentException>(() => BlockwiseAdam.Step(new float[4097], new float[4097], new byte[4097], new float[2], new byte[4097], new float[3], 1, Hp));
        Assert.Contains("3 scales per moment", e.Message);
    }

    /// <summary>bf16 bits as PyTorch casts (and <see cref="CpuAdam"/> writes them): round to nearest even, NaN as 0x7FC0.</summary>
    private static ushort Bf16Of(float x) =>
        float.IsNaN(x) ? (ushort)0x7FC0 : (ushort)((BitConverter.SingleToUInt32Bits(x) + 0x7FFFu + ((BitConverter.SingleToUInt32Bits(x) >> 16) & 1u)) >> 16);

    [Theory]
    [InlineData(7, 1)]
    [InlineData(2048 * 3 + 13, 1)]
    [InlineData(70_001, 2)]
    public void Given_a_bf16_copy_When_stepped_Then_it_is_the_updated_parameters_in_bf16_and_nothing_else_changes(int n, int threads)
    {
        var rng = new Random(n);
        State plain = new(n), copied = new(n);
        float[] p0 = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        // Ties of the bf16 rounding (to even: down from 0x3F808000, up from 0x3F818000), a NaN and a carry into the exponent.
        uint[] special = [0x3F808000u, 0x3F818000u, 0x7FC00001u, 0x3FFFFFFFu, 0xBF808000u];
        for (int i = 0; i < special.Length && i < n; i++) p0[n - 1 - i] = BitConverter.UInt32BitsToSingle(special[i]);
        p0.CopyTo(plain.P, 0);
        p0.CopyTo(copied.P, 0);
        var bf16 = new ushort[n];
        for (int step = 1; step <= 3; step++)
        {
            float[] g = Gradient(rng, n, 1);
            // Step 2: the last block's gradient holds a NaN, so that block keeps its parameters, ties and NaN included.
            if (step == 2) g[n - 1] = float.NaN;
            BlockwiseAdamReport a = plain.Step(g, step, Hp, threads, gradScale: 0.5f);
            BlockwiseAdamReport b = BlockwiseAdam.Step(copied.P, g, copied.MCodes, copied.MScales, copied.VCodes, copied.VScales, bf16, step, Hp, 0.5f, threads);
            Assert.Equal(a, b);
            Assert.Equal(plain.P, copied.P);
            Assert.Equal(plain.MCodes, copied.MCodes);
            Assert.Equal(plain.VCodes, copied.VCodes);
            Assert.Equal(plain.MScales, copied.MScales);
            Assert.Equal(plain.VScales, copied.VScales);
            Assert.Equal(copied.P.Select(Bf16Of).ToArray(), bf16);
        }
    }

    [Fact]
    public void Given_a_bf16_copy_of_the_wrong_length_Then_the_message_names_both_lengths()
    {
        var e = Assert.Throws<ArgumentException>(() => BlockwiseAdam.Step(new float[10], new float[10], new byte[10], new float[1], new byte[10], new float[1], new ushort[9], 1, Hp));
        Assert.Contains("bf16 copy of 10 elements", e.Message);
        Assert.Contains("got 9", e.Message);
    }
}

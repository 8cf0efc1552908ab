using AiOs.Planner.Optim;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// Every CpuAdam kernel (scalar, <c>Vector&lt;T&gt;</c>, 256- and 512-bit; the 512-bit one is emulated where the
/// processor lacks AVX-512) against the scalar loop written out here, bit for bit: the same float operations in
/// the same order, so any reordering, fusing (FMA) or lost tail element shows as a differing bit pattern.
/// </summary>
public class CpuAdamKernelTests
{
    private static readonly AdamHyperParameters Hp = new() { LearningRate = 3e-3f, Beta1 = 0.9f, Beta2 = 0.95f, Epsilon = 1e-8f, WeightDecay = 0.1f };

    /// <summary>The engine's AdamW in float, element by element, as CpuAdam computed it before the kernels were rewritten.</summary>
    private static void Reference(float[] p, float[] g, float[] m, float[] v, ushort[]? h, int step, AdamHyperParameters hp)
    {
        double bias1 = 1 - Math.Pow(hp.Beta1, step), bias2 = 1 - Math.Pow(hp.Beta2, step);
        float decay = (float)(1 - (double)hp.LearningRate * hp.WeightDecay);
        float stepSize = (float)(hp.LearningRate / bias1), invSqrtBias2 = (float)(1 / Math.Sqrt(bias2));
        float c1 = 1 - hp.Beta1, c2 = 1 - hp.Beta2;
        for (int i = 0; i < p.Length; i++)
        {
            float mi = hp.Beta1 * m[i] + c1 * g[i];
            float vi = hp.Beta2 * v[i] + c2 * g[i] * g[i];
            m[i] = mi;
            v[i] = vi;
            p[i] = p[i] * decay - stepSize * mi / (MathF.Sqrt(vi) * invSqrtBias2 + hp.Epsilon);
            if (h is null) continue;
            uint bits = BitConverter.SingleToUInt32Bits(p[i]);
            h[i] = float.IsNaN(p[i]) ? (ushort)0x7FC0 : (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
        }
    }

    // The kernel travels by name: the enum is internal to Core, and a public test method cannot take it.
    public static TheoryData<string, int, int, bool> Cases()
    {
        var data = new TheoryData<string, int, int, bool>();
        foreach (string kernel in Enum.GetNames<CpuAdam.Kernel>())
            foreach (bool bf16 in new[] { false, true })
            {
                // Lengths around one and two vectors of every width (the tails), and a threaded split whose
                // last 64 Ki chunk is short and not a multiple of any width.
                foreach (int n in new[] { 1, 7, 8, 15, 17, 31, 33, 63, 65 }) data.Add(kernel, n, 1, bf16);
                data.Add(kernel, 3 * 64 * 1024 + 13, 3, bf16);
            }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Given_a_kernel_When_stepped_three_times_Then_every_element_is_bit_identical_to_the_scalar_loop(string kernelName, int n, int threads, bool bf16)
    {
        var kernel = Enum.Parse<CpuAdam.Kernel>(kernelName);
        var rng = new Random(n * 31 + (int)kernel);
        float[] p = new float[n], m = new float[n], v = new float[n];
        for (int i = 0; i < n; i++) p[i] = (float)(rng.NextDouble() * 4 - 2);
        // Awkward values where the lengths allow: NaN and infinite weights, a zero, a subnormal and a huge gradient.
        if (n > 5) { p[1] = float.NaN; p[2] = float.NegativeInfinity; p[3] = 0; }
        float[] rp = (float[])p.Clone(), rm = new float[n], rv = new float[n];
        ushort[]? h = bf16 ? new ushort[n] : null, rh = bf16 ? new ushort[n] : null;

        for (int step = 1; step <= 3; step++)
        {
            float[] g = new float[n];
            for (int i = 0; i < n; i++) g[i] = (float)(rng.NextDouble() - 0.5) * step;
            if (n > 5) { g[4] = 1e-40f; g[5] = 3e18f; }
            CpuAdam.Step(p, g, m, v, h ?? [], step, Hp, threads, kernel);
            Reference(rp, g, rm, rv, rh, step, Hp);
        }

        for (int i = 0; i < n; i++)
        {
            Assert.True(Bits(rp[i]) == Bits(p[i]), $"p[{i}]: {rp[i]:R} expected, {p[i]:R} from {kernel}");
            Assert.True(Bits(rm[i]) == Bits(m[i]), $"m[{i}]: {rm[i]:R} expected, {m[i]:R} from {kernel}");
            Assert.True(Bits(rv[i]) == Bits(v[i]), $"v[{i}]: {rv[i]:R} expected, {v[i]:R} from {kernel}");
            if (bf16) Assert.True(rh![i] == h![i], $"bf16[{i}]: 0x{rh[i]:X4} expected, 0x{h[i]:X4} from {kernel}");
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Given_bf16_gradients_When_stepped_three_times_Then_every_element_is_bit_identical_to_stepping_on_them_widened(string kernelName, int n, int threads, bool bf16)
    {
        // What the engine did before the fused read: widen the bf16 store's gradients into an fp32 scratch, then step.
        var kernel = Enum.Parse<CpuAdam.Kernel>(kernelName);
        var rng = new Random(n * 17 + (int)kernel);
        float[] p = new float[n], m = new float[n], v = new float[n];
        for (int i = 0; i < n; i++) p[i] = (float)(rng.NextDouble() * 4 - 2);
        float[] rp = (float[])p.Clone(), rm = new float[n], rv = new float[n];
        ushort[]? h = bf16 ? new ushort[n] : null, rh = bf16 ? new ushort[n] : null;
        var hp = Hp with { GradientScale = 0.61f };

        for (int step = 1; step <= 3; step++)
        {
            ushort[] gBits = new ushort[n];
            for (int i = 0; i < n; i++) gBits[i] = (ushort)(BitConverter.SingleToUInt32Bits((float)(rng.NextDouble() - 0.5) * step) >> 16);
            // Awkward bf16 values where the lengths allow: a subnormal, a negative zero, an infinity, the largest finite.
            if (n > 5) { gBits[1] = 0x0001; gBits[2] = 0x8000; gBits[3] = 0xFF80; gBits[4] = 0x7F7F; }
            float[] widened = gBits.Select(b => BitConverter.UInt32BitsToSingle((uint)b << 16)).ToArray();
            CpuAdam.StepBf16Gradients(p, gBits, m, v, h ?? [], step, hp, threads, kernel);
            CpuAdam.Step(rp, widened, rm, rv, rh ?? [], step, hp, threads, CpuAdam.Kernel.Scalar);
        }

        for (int i = 0; i < n; i++)
        {
            Assert.True(Bits(rp[i]) == Bits(p[i]), $"p[{i}]: {rp[i]:R} expected, {p[i]:R} from {kernel}");
            Assert.True(Bits(rm[i]) == Bits(m[i]), $"m[{i}]: {rm[i]:R} expected, {m[i]:R} from {kernel}");
            Assert.True(Bits(rv[i]) == Bits(v[i]), $"v[{i}]: {rv[i]:R} expected, {v[i]:R} from {kernel}");
            if (bf16) Assert.True(rh![i] == h![i], $"bf16[{i}]: 0x{rh[i]:X4} expected, 0x{h[i]:X4} from {kernel}");
        }
        Assert.Contains(m, x => x != 0); // the gradients reached the moments
    }

    [Fact]
    public void Given_bf16_gradients_of_another_length_When_stepped_Then_it_is_refused_naming_the_lengths()
    {
        var error = Assert.Throws<ArgumentException>(() => CpuAdam.StepBf16Gradients(new float[4], new ushort[3], new float[4], new float[4], [], 1, Hp));
        Assert.Contains("bf16 gradients", error.Message);
        Assert.Contains("4, 3", error.Message);
    }

    [Theory]
    [InlineData("Scalar")]
    [InlineData("Vector")]
    [InlineData("V256")]
    [InlineData("V512")]
    public void Given_a_gradient_scale_When_stepped_Then_it_is_bit_identical_to_stepping_on_gradients_scaled_beforehand(string kernelName)
    {
        // What the engine's CpuAdamStep does today for a clipped update: g·scale into a scratch buffer, then the step.
        var kernel = Enum.Parse<CpuAdam.Kernel>(kernelName);
        const int n = 3 * 64 * 1024 + 29;
        const float scale = 0.3712f;
        var rng = new Random(11);
        float[] p = new float[n], g = new float[n], m = new float[n], v = new float[n];
        for (int i = 0; i < n; i++) { p[i] = (float)(rng.NextDouble() * 2 - 1); g[i] = (float)(rng.NextDouble() - 0.5) * 7; }
        float[] p2 = (float[])p.Clone(), m2 = new float[n], v2 = new float[n], scaled = g.Select(x => x * scale).ToArray();
        ushort[] h = new ushort[n], h2 = new ushort[n];

        for (int step = 1; step <= 2; step++)
        {
            CpuAdam.Step(p, g, m, v, h, step, Hp with { GradientScale = scale }, 3, kernel);
            CpuAdam.Step(p2, scaled, m2, v2, h2, step, Hp, 3, kernel);
        }

        Assert.Equal(p2.Select(Bits), p.Select(Bits));
        Assert.Equal(m2.Select(Bits), m.Select(Bits));
        Assert.Equal(v2.Select(Bits), v.Select(Bits));
        Assert.Equal(h2, h);
        Assert.NotEqual(g, scaled); // the scale did something: a test of 1 against 1 could not fail
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    public void Given_a_non_finite_gradient_scale_When_stepped_Then_it_is_refused_before_any_element_changes(float scale)
    {
        float[] p = [1f, 2f], g = [0.5f, 0.5f], m = new float[2], v = new float[2];
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => CpuAdam.Step(p, g, m, v, 1, Hp with { GradientScale = scale }));
        Assert.Contains("GradientScale", error.Message);
        Assert.Equal([1f, 2f], p);
    }

    [Fact]
    public void Given_this_processor_When_the_kernel_is_chosen_Then_it_is_the_widest_it_runs_natively()
    {
        var expected = System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated ? CpuAdam.Kernel.V512
            : System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated ? CpuAdam.Kernel.V256
            : System.Numerics.Vector.IsHardwareAccelerated ? CpuAdam.Kernel.Vector : CpuAdam.Kernel.Scalar;
        Assert.Equal(expected, CpuAdam.Best);
    }

    private static uint Bits(float x) => BitConverter.SingleToUInt32Bits(x);
}

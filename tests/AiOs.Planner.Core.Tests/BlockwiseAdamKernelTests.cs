using AiOs.Planner.Optim;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// Every 8-bit Adam kernel this processor runs (<see cref="BlockwiseKernel"/>) against the scalar one, bit for bit, on
/// lengths that leave every kind of remainder, edge gradients and edge state: the 512-bit kernel is checked here on
/// machines with AVX-512 and the AVX2 one everywhere it runs, so neither goes unchecked whichever machine runs the tests.
/// </summary>
public class BlockwiseAdamKernelTests
{
    private static readonly AdamHyperParameters Hp = new() { LearningRate = 1e-2f, WeightDecay = 0.1f };

    /// <summary>The kernels that can run here, wider than scalar (as ints: the enum is internal).</summary>
    public static TheoryData<int> VectorKernels()
    {
        var data = new TheoryData<int>();
        foreach (BlockwiseKernel k in Enum.GetValues<BlockwiseKernel>())
            if (k > BlockwiseKernel.Scalar && k <= BlockwiseAdam.Kernel) data.Add((int)k);
        if (data.Count == 0) data.Add((int)BlockwiseKernel.Scalar); // no vector kernel here: the scalar one against itself
        return data;
    }

    /// <summary>8-bit state and its bf16 copy, stepped on one kernel.</summary>
    private sealed class State
    {
        public float[] P = [];
        public byte[] MCodes = [], VCodes = [];
        public float[] MScales = [], VScales = [];
        public ushort[] Bf16 = [];

        public State Clone() => new()
        {
            P = (float[])P.Clone(), MCodes = (byte[])MCodes.Clone(), VCodes = (byte[])VCodes.Clone(),
            MScales = (float[])MScales.Clone(), VScales = (float[])VScales.Clone(), Bf16 = (ushort[])Bf16.Clone(),
        };

        public BlockwiseAdamReport Step(float[] g, int step, BlockwiseKernel kernel, int threads) =>
            BlockwiseAdam.Step(P, g, MCodes, MScales, VCodes, VScales, Bf16, step, Hp, 0.75f, threads, kernel);
    }

    /// <summary>
    /// Random state with edge blocks: random codes under scales of both signs, a subnormal m scale, a negative subnormal m
    /// scale under codes whose products round to −0 (with −0 gradients: a block of m all −0), zero scales; parameters
    /// with bf16 rounding ties, a NaN, ±0 and ±∞.
    /// </summary>
    private static State Edges(int n, Random rng)
    {
        int blocks = (int)BlockwiseQuantization.Blocks(n);
        var s = new State
        {
            P = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(),
            MCodes = Enumerable.Range(0, n).Select(_ => (byte)rng.Next(256)).ToArray(),
            VCodes = Enumerable.Range(0, n).Select(_ => (byte)rng.Next(256)).ToArray(),
            MScales = Enumerable.Range(0, blocks).Select(_ => (float)((rng.NextDouble() - 0.5) * 1e-2)).ToArray(),
            VScales = Enumerable.Range(0, blocks).Select(_ => (float)(rng.NextDouble() * 1e-2)).ToArray(),
            Bf16 = new ushort[n],
        };
        uint[] special = [0x3F808000u, 0x3F818000u, 0x7FC00001u, 0x80000000u, 0u, 0x7F800000u, 0xFF800000u, 0x00000001u];
        for (int i = 0; i < special.Length && i < n; i++) s.P[rng.Next(n)] = BitConverter.UInt32BitsToSingle(special[i]);
        if (blocks > 1) { s.MScales[1] = 1e-41f; s.VScales[1] = 3e-42f; }
        if (blocks > 2) { s.MScales[2] = 0; s.VScales[2] = 0; }
        // m = 0.5-and-below codes × −1e-45 = −0; the block's gradients are made −0 in Gradient.
        s.MScales[^1] = -1e-45f;
        for (int i = (blocks - 1) * BlockwiseQuantization.BlockSize; i < n; i++) s.MCodes[i] = 128;
        return s;
    }

    /// <summary>
    /// Gradients over many decades with zeros, −0s, subnormals, the last block all −0; at <paramref name="step"/> 2 a NaN,
    /// at 3 a +∞, at 4 a value whose square overflows (each skips its block).
    /// </summary>
    private static float[] Gradient(Random rng, int n, int step)
    {
        var g = Enumerable.Range(0, n).Select(_ => (float)((rng.NextDouble() - 0.5) * Math.Pow(10, -10 * rng.NextDouble()))).ToArray();
        for (int i = 0; i < n; i += 89) g[i] = 0;
        for (int i = 3; i < n; i += 97) g[i] = -0f;
        for (int i = 5; i < n; i += 101) g[i] = rng.Next(2) == 0 ? 1e-41f : -1e-45f;
        for (int i = (int)(BlockwiseQuantization.Blocks(n) - 1) * BlockwiseQuantization.BlockSize; i < n; i++) g[i] = -0f;
        int at = rng.Next(n);
        if (step == 2) g[at] = float.NaN;
        if (step == 3) g[at] = float.PositiveInfinity;
        if (step == 4) g[at] = -1e25f;
        return g;
    }

    private static uint[] Bits(float[] x) => x.Select(BitConverter.SingleToUInt32Bits).ToArray();

    [Theory]
    [MemberData(nameof(VectorKernels))]
    public void Given_edge_state_and_gradients_of_odd_lengths_When_stepped_by_a_vector_kernel_Then_every_bit_equals_the_scalar_kernels(int kernelNumber)
    {
        var kernel = (BlockwiseKernel)kernelNumber;
        // Remainders of 1, 7, 8 + 7, 15 and 16 + 3 after whole groups of 16; a short block alone; several blocks on two threads;
        // last blocks of 48, 48 + 15 and 64 + 33 (the VBMI kernel decodes 64 codes at a time: a short group's masked load
        // with its last code in a group of sixteen, or in the scalar remainder, and a whole group before it).
        foreach ((int n, int threads) in new[] { (2048 + 1, 1), (7, 1), (15, 1), (31, 1), (2 * 2048 + 15, 2), (3 * 2048 + 19, 1), (4 * 2048 + 13, 2),
            (2048 + 48, 1), (2048 + 63, 1), (2 * 2048 + 97, 1) })
        {
            var rng = new Random(n);
            State reference = Edges(n, rng), fast = reference.Clone();
            for (int step = 1; step <= 5; step++)
            {
                float[] g = Gradient(rng, n, step);
                BlockwiseAdamReport expected = reference.Step(g, step, BlockwiseKernel.Scalar, threads);
                BlockwiseAdamReport actual = fast.Step(g, step, kernel, threads);
                string where = $"n {n}, step {step}";
                Assert.True(expected == actual, $"{where}: report {actual}, scalar {expected}");
                Assert.True(Bits(reference.MScales).SequenceEqual(Bits(fast.MScales)), $"{where}: m scales differ");
                Assert.True(Bits(reference.VScales).SequenceEqual(Bits(fast.VScales)), $"{where}: v scales differ");
                Assert.True(reference.MCodes.AsSpan().SequenceEqual(fast.MCodes), $"{where}: m codes differ");
                Assert.True(reference.VCodes.AsSpan().SequenceEqual(fast.VCodes), $"{where}: v codes differ");
                Assert.True(Bits(reference.P).SequenceEqual(Bits(fast.P)), $"{where}: parameters differ");
                Assert.True(reference.Bf16.AsSpan().SequenceEqual(fast.Bf16), $"{where}: bf16 copies differ");
            }
        }
    }

    [Theory]
    [MemberData(nameof(VectorKernels))]
    public void Given_non_finite_m_scales_handed_in_When_stepped_by_a_vector_kernel_Then_every_bit_equals_the_AVX2_kernels(int kernelNumber)
    {
        // NaN m (∞ × code 127's 0, or a NaN scale) with finite v: the extremes' NaN depends on the order vmaxps sees them in,
        // so here the kernels are held to the AVX2 kernel's order (the scalar loop propagates NaN in its own way).
        var kernel = (BlockwiseKernel)kernelNumber;
        BlockwiseKernel baseline = kernel < BlockwiseKernel.Avx2 ? kernel : BlockwiseKernel.Avx2;
        foreach (int n in new[] { 3 * 2048 + 21, 2048 + 47 })
        {
            var rng = new Random(n);
            State reference = Edges(n, rng);
            reference.MScales[0] = float.PositiveInfinity;
            reference.MScales[1] = float.NaN;
            reference.MScales[^1] = float.NegativeInfinity;
            // Block 0: m all −∞ (code 0 × ∞) but element 3's +∞ and element 27's NaN (0 × ∞): in eight lanes the NaN, in lane 3
            // after the +∞, drops it; in sixteen lanes they fall in lanes 3 and 11, and the +∞ would stay.
            Array.Fill(reference.MCodes, (byte)0, 0, 2048);
            reference.MCodes[3] = 255;
            reference.MCodes[27] = 127;
            State fast = reference.Clone();
            float[] g = Gradient(rng, n, 1);
            Assert.Equal(reference.Step(g, 1, baseline, 1), fast.Step(g, 1, kernel, 1));
            Assert.True(Bits(reference.MScales).SequenceEqual(Bits(fast.MScales)), $"n {n}: m scales differ");
            Assert.True(Bits(reference.VScales).SequenceEqual(Bits(fast.VScales)), $"n {n}: v scales differ");
            Assert.True(reference.MCodes.AsSpan().SequenceEqual(fast.MCodes), $"n {n}: m codes differ");
            Assert.True(reference.VCodes.AsSpan().SequenceEqual(fast.VCodes), $"n {n}: v codes differ");
            Assert.True(Bits(reference.P).SequenceEqual(Bits(fast.P)), $"n {n}: parameters differ");
            Assert.True(reference.Bf16.AsSpan().SequenceEqual(fast.Bf16), $"n {n}: bf16 copies differ");
        }
    }
}

using AiOs.Planner.Optim;
using Coefficients = AiOs.Planner.Optim.BlockwiseAdam.Coefficients;

namespace AiOs.Planner.Engine.Optim;

/// <summary>
/// The arithmetic of one 8-bit AdamW block as the fused CUDA kernel (<see cref="FusedCudaAdamW8bit"/>) does it, in C#:
/// its per-step constants, its map tables (values and stochastic-rounding constants) and a scalar twin of its block update,
/// line for line. The twin is what the tests hold against <see cref="BlockwiseAdam"/> (the CPU optimizer) bit for bit,
/// since the kernel itself cannot run without a GPU.
/// </summary>
/// <remarks>
/// The order of operations is <see cref="BlockwiseAdam"/>'s, not the fp32 device kernel's: m ← β1·m + (1−β1)·g (not
/// lerp), p ← p·decay − (stepSize·m) / (√v·(1/√bc2) + ε). A resident 8-bit run thus makes the same codes, scales and
/// parameters as an offloaded 8-bit run for the same gradients, and its checkpoints mean the same.
/// </remarks>
internal static class EightBitAdamKernel
{
    /// <summary>Entries per map table: 256 values, and 256 stochastic-rounding constants (56 used).</summary>
    public const int TableSize = 256;

    /// <summary>Where each of a map's stochastic-rounding constants starts in its table (8 per region each, <see cref="DynamicQuantizationMap.StochasticConstants"/>).</summary>
    private const int RegionUpper = 0, Slope = 8, Intercept = 16, High = 24, Lower = 32, Upper = 40, Base = 48;

    /// <summary>
    /// The kernel's table: [signed values | unsigned values | signed stochastic-rounding constants | unsigned ones], 256
    /// floats each (56 constants used: the map's region boundaries and per-region slope, intercept, high, lower and upper
    /// bends and base, <see cref="DynamicQuantizationMap.StochasticConstants"/>).
    /// </summary>
    public static float[] Table()
    {
        var table = new float[4 * TableSize];
        DynamicQuantizationMap.Signed.Values.CopyTo(table.AsSpan(0, TableSize));
        DynamicQuantizationMap.Unsigned.Values.CopyTo(table.AsSpan(TableSize, TableSize));
        DynamicQuantizationMap.Signed.StochasticConstants().CopyTo(table.AsSpan(2 * TableSize));
        DynamicQuantizationMap.Unsigned.StochasticConstants().CopyTo(table.AsSpan(3 * TableSize));
        return table;
    }

    /// <summary>
    /// The kernel's <c>quantize_stochastic</c>: the code of y rounded up in magnitude with probability equal to its
    /// fractional position between its neighbours, for u ∈ (0, 1); |y| clamped to 1 (NaN too), negatives never −1's missing
    /// code. The region is the count of boundaries below |y| (what the CPU's estimate-and-correct finds), the rest
    /// <see cref="DynamicQuantizationMap.QuantizeStochastic"/>'s arithmetic.
    /// </summary>
    public static byte QuantizeStochastic(float y, float u, ReadOnlySpan<float> c, bool signed)
    {
        float a = MathF.Abs(y);
        a = a < 1f ? a : 1f;
        int d = 0;
        for (int e = 0; e < 7; e++) d += a > c[RegionUpper + e] ? 1 : 0;
        float q = MathF.FusedMultiplyAdd(a, c[Slope + d], c[Intercept + d]);
        float below = q < 0f ? q : 0f, beyond = q - c[High + d], above = beyond > 0f ? beyond : 0f;
        float f = MathF.FusedMultiplyAdd(c[Lower + d], below, MathF.FusedMultiplyAdd(c[Upper + d], above, q));
        int r = Math.Max((int)c[Base + d] + (int)MathF.Floor(f + u), 0);
        if (!signed) return (byte)Math.Min(r, 255);
        return y < 0 ? (byte)(127 - Math.Min(r, 127)) : (byte)(127 + Math.Min(r, 128));
    }

    /// <summary>The kernel's <c>aios_mix</c>: <see cref="StochasticRounding.Mix(uint)"/>, spelled out as the kernel spells it.</summary>
    public static uint Mix(uint x)
    {
        x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; x ^= x >> 16;
        return x;
    }

    /// <summary>The per-block seeds of a unit's blocks, in block order: each block's index within its tensor and that tensor's length (<see cref="StochasticRounding.BlockSeed"/>).</summary>
    public static int[] BlockSeeds(IReadOnlyList<DeviceEightBitMoments.Piece> pieces)
    {
        var seeds = new List<int>();
        foreach (DeviceEightBitMoments.Piece piece in pieces)
            for (long b = 0; b < BlockwiseQuantization.Blocks(piece.Length); b++) seeds.Add((int)StochasticRounding.BlockSeed(b, piece.Length));
        return [.. seeds];
    }

    /// <summary>The kernel's uniforms (m's, v's) of element <paramref name="index"/> of the block keyed by <paramref name="key"/>: the hash's low and high 16 bits.</summary>
    public static (float M, float V) Uniforms(uint key, int index)
    {
        uint h = Mix(key + (uint)index);
        return (MathF.FusedMultiplyAdd((int)(h & 0xFFFF), 1f / 65536, 1f / 131072), MathF.FusedMultiplyAdd((int)(h >> 16), 1f / 65536, 1f / 131072));
    }

    /// <summary>
    /// The scalar twin of the kernel's block: decode, AdamW, block extremes, and (only if every new v is finite)
    /// the parameter update, new scales and codes, both rounded stochastically with the uniforms of (step,
    /// <paramref name="blockSeed"/> = <see cref="StochasticRounding.BlockSeed"/>, index in block) (the kernel's bf16 copy
    /// is the fp32 kernel's rounding). Returns whether the block was updated.
    /// </summary>
    public static bool UpdateBlock(Span<float> p, ReadOnlySpan<float> g, Span<byte> mc, ref float ms, Span<byte> vc, ref float vs, Coefficients k, ReadOnlySpan<float> table, uint blockSeed)
    {
        int n = p.Length;
        ReadOnlySpan<float> mValues = table[..TableSize], vValues = table.Slice(TableSize, TableSize);
        ReadOnlySpan<float> mConstants = table.Slice(2 * TableSize, TableSize), vConstants = table.Slice(3 * TableSize, TableSize);
        var m1 = new float[n];
        var v1 = new float[n];
        float mScale = ms, vScale = vs, mMax = 0, mMin = 0, vMax = 0;
        bool finite = true;
        for (int i = 0; i < n; i++)
        {
            float gi = g[i] * k.GradScale;
            m1[i] = k.Beta1 * (mValues[mc[i]] * mScale) + k.OneMinusBeta1 * gi;
            float r0 = vValues[vc[i]] * vScale; // v is coded by its square root
            v1[i] = k.Beta2 * (r0 * r0) + k.OneMinusBeta2 * gi * gi;
            finite &= v1[i] < float.PositiveInfinity;
            mMax = Math.Max(mMax, m1[i]); mMin = Math.Min(mMin, m1[i]); vMax = Math.Max(vMax, v1[i]);
        }
        if (!finite) return false;
        float mNewScale = mMax >= -mMin ? mMax : mMin, vNewScale = MathF.Sqrt(vMax);
        float mInv = mNewScale == 0 ? 0 : 1 / mNewScale, vInv = vNewScale == 0 ? 0 : 1 / vNewScale;
        uint key = Mix(Mix((uint)k.Step) ^ blockSeed);
        for (int i = 0; i < n; i++)
        {
            float r1 = MathF.Sqrt(v1[i]);
            float pi = p[i] * k.Decay - k.StepSize * m1[i] / (r1 * k.InvSqrtBias2 + k.Epsilon);
            p[i] = pi;
            var (um, uv) = Uniforms(key, i);
            mc[i] = QuantizeStochastic(m1[i] * mInv, um, mConstants, signed: true);
            vc[i] = QuantizeStochastic(r1 * vInv, uv, vConstants, signed: false);
        }
        ms = mNewScale;
        vs = vNewScale;
        return true;
    }
}

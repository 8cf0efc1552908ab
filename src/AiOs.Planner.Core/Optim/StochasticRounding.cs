using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AiOs.Planner.Optim;

/// <summary>
/// The counter-based random numbers of the 8-bit optimizer's stochastic rounding: no state, so a step's codes depend only
/// on (step, the block's index in its tensor and the tensor's length, the element's index in its block), never on threads,
/// chunking or what ran before, and a resumed run draws what the uninterrupted one drew. Not on values either: keyed by
/// contents (the block's scales), a gradient an ulp away would redraw a whole block, and engines whose gradients differ in
/// float rounding (resident and offloaded) would drift apart far faster than by nearest rounding.
/// The hash is Wellons' lowbias32 (two multiplies); its low and high 16 bits give m's and v's uniforms as (k + ½)/2¹⁶,
/// so u lies in [2⁻¹⁷, 1 − 2⁻¹⁷] and never moves 0 or 1.
/// </summary>
public static class StochasticRounding
{
    /// <summary>lowbias32: a 32-bit integer hash with near-ideal avalanche.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Mix(uint x)
    {
        x ^= x >> 16;
        x *= 0x7feb352du;
        x ^= x >> 15;
        x *= 0x846ca68bu;
        x ^= x >> 16;
        return x;
    }

    /// <summary>
    /// A block's step-independent seed from where it lies: its index among the blocks of the span stepped together (a
    /// tensor, or a piece of one) and that span's length, which every engine knows without the block's contents.
    /// </summary>
    public static uint BlockSeed(long block, long spanLength) => Mix(Mix((uint)spanLength ^ (uint)(spanLength >> 32)) ^ (uint)block);

    /// <summary>The key of a block at <paramref name="step"/>.</summary>
    public static uint BlockKey(int step, uint seed) => Mix(Mix((uint)step) ^ seed);

    /// <summary>The hash of element <paramref name="index"/> of a block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint ElementHash(uint key, int index) => Mix(key + (uint)index);

    /// <summary>The first moment's uniform in (0, 1) from an element hash: its low 16 bits as (k + ½)/2¹⁶.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float FirstMomentUniform(uint hash) => MathF.FusedMultiplyAdd((int)(hash & 0xFFFF), 1f / 65536, 1f / 131072);

    /// <summary>The second moment's uniform in (0, 1) from an element hash: its high 16 bits as (k + ½)/2¹⁶.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float SecondMomentUniform(uint hash) => MathF.FusedMultiplyAdd((int)(hash >> 16), 1f / 65536, 1f / 131072);

    /// <summary><see cref="Mix(uint)"/> on eight lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<uint> Mix(Vector256<uint> x)
    {
        x ^= Vector256.ShiftRightLogical(x, 16);
        x *= Vector256.Create(0x7feb352du);
        x ^= Vector256.ShiftRightLogical(x, 15);
        x *= Vector256.Create(0x846ca68bu);
        x ^= Vector256.ShiftRightLogical(x, 16);
        return x;
    }

    /// <summary><see cref="FirstMomentUniform(uint)"/> and <see cref="SecondMomentUniform(uint)"/> on eight lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static (Vector256<float> M, Vector256<float> V) Uniforms(Vector256<uint> hash)
    {
        // The products and sums are exact (16-bit integers, power-of-two steps), so FMA or not gives the scalar's values.
        Vector256<float> unit = Vector256.Create(1f / 65536), half = Vector256.Create(1f / 131072);
        Vector256<float> m = Vector256.ConvertToSingle((hash & Vector256.Create(0xFFFFu)).AsInt32()) * unit + half;
        Vector256<float> v = Vector256.ConvertToSingle(Vector256.ShiftRightLogical(hash, 16).AsInt32()) * unit + half;
        return (m, v);
    }

    /// <summary>
    /// Both moments' uniforms of sixteen elements whose <see cref="ElementHash"/> inputs (key + index) are
    /// <paramref name="counter"/>: <see cref="FirstMomentUniform(uint)"/> and <see cref="SecondMomentUniform(uint)"/> of
    /// <see cref="Mix(uint)"/>, bit for bit, with the hash's last step (x ^= x ≫ 16) folded into the uniforms' bit operations.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static (Vector512<float> M, Vector512<float> V) ElementUniforms(Vector512<uint> counter)
    {
        Vector512<uint> x = counter;
        x ^= Vector512.ShiftRightLogical(x, 16);
        x *= Vector512.Create(0x7feb352du);
        x ^= Vector512.ShiftRightLogical(x, 15);
        x *= Vector512.Create(0x846ca68bu);
        // The finished hash is x ^ (x ≫ 16): its high 16 bits are x's, its low 16 bits x's low ^ high. By the bits, no
        // conversion: 16 bits k placed as mantissa bits 7 … 22 under bit 6 set and 1.0's exponent make 1 + (2k + 1)/2¹⁷, and
        // subtracting 1 (exact) leaves (k + ½)/2¹⁶, the scalar's value. v's bits are (x ≫ 9) inside the mantissa field or-ed
        // with 1.0's pattern (one vpternlogd); m's are v's with the mantissa field xor-ed with x ≪ 7, which holds x's low 16
        // bits there (another: mantissa ? (x ≪ 7) ^ v : v), so the hash's last shift and xor cost nothing.
        Vector512<uint> mantissa = Vector512.Create(0x007FFF80u), one = Vector512.Create(0x3F800040u);
        Vector512<uint> vBits = Avx512F.TernaryLogic(Vector512.ShiftRightLogical(x, 9), mantissa, one, 0xEA);
        Vector512<uint> mBits = Avx512F.TernaryLogic(Vector512.ShiftLeft(x, 7), vBits, mantissa, 0x6C);
        return (mBits.AsSingle() - Vector512<float>.One, vBits.AsSingle() - Vector512<float>.One);
    }
}

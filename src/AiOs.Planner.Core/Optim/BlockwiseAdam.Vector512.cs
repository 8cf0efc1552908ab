using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AiOs.Planner.Optim;

/// <summary>
/// The 512-bit kernel (<see cref="BlockwiseKernel.Avx512"/>): the AVX2 kernel's operations on sixteen lanes, the same
/// ones per element, so every code, scale, parameter and bf16 word is the AVX2 kernel's bit for bit.
/// </summary>
public static unsafe partial class BlockwiseAdam
{
    /// <summary>The block's decoded tables, sixteen codes at a time (see <see cref="DecodeTables"/>).</summary>
    private static void DecodeTables512(float* mTable, float* vTable, float mScale, float vScale, float* mOld, float* vOld)
    {
        var msv = Vector512.Create(mScale); var vsv = Vector512.Create(vScale);
        for (int c = 0; c < DecodedTable; c += 16)
        {
            (Vector512.Load(mTable + c) * msv).Store(mOld + c);
            Vector512<float> r0 = Vector512.Load(vTable + c) * vsv;
            (r0 * r0).Store(vOld + c);
        }
    }

    /// <summary>
    /// Pass 1 (see <see cref="Moments"/>) on the block's whole groups of sixteen; returns how many elements it did, the rest
    /// (fewer than sixteen, only in a tensor's last block) left to the scalar loop. The codes are still looked up by scalar
    /// loads: gathers (two 8-lane vgatherdps per moment) and vpermi2ps over the 256-entry tables (eight permutes and seven
    /// blends per moment) both ran pass 1 about a fifth slower on an AVX-512 AMD EPYC with the block in cache (docs/benchmarks.md).
    /// </summary>
    /// <remarks>
    /// The extremes run on sixteen lanes. Without NaN among the m (v is finite, else the block is skipped), they are the AVX2
    /// kernel's whatever the lanes: maxima and minima are unique but for ±0, the reduction from +0 makes a zero maximum +0,
    /// and a zero minimum's sign never reaches the scale. A NaN m (only from a non-finite m scale handed in) makes vmaxps's
    /// result depend on the order, so such a block's extremes are redone from the buffers eight lanes at a time, in the
    /// AVX2 kernel's order.
    /// </remarks>
    private static int Moments512(float* g, byte* mc, byte* vc, float* mOld, float* vOld, float* mNew, float* vNew, int n, Coefficients k, ref Extremes extremes)
    {
        var b1 = Vector512.Create(k.Beta1); var c1 = Vector512.Create(k.OneMinusBeta1);
        var b2 = Vector512.Create(k.Beta2); var c2 = Vector512.Create(k.OneMinusBeta2);
        var gs = Vector512.Create(k.GradScale);
        Vector512<float> maxM = Vector512<float>.Zero, minM = Vector512<float>.Zero, maxV = Vector512<float>.Zero;
        Vector512<float> ok = Vector512<float>.AllBitsSet, ordered = Vector512<float>.AllBitsSet, inf = Vector512.Create(float.PositiveInfinity);
        int vectorEnd = n & ~15;
        for (int j = 0; j < Math.Min(LookAhead, vectorEnd); j += 8) Look(mc + j, vc + j, mOld, vOld, mNew + j, vNew + j);
        for (int i = 0; i < vectorEnd; i += 16)
        {
            if (i + LookAhead < vectorEnd)
            {
                Look(mc + i + LookAhead, vc + i + LookAhead, mOld, vOld, mNew + i + LookAhead, vNew + i + LookAhead);
                Look(mc + i + LookAhead + 8, vc + i + LookAhead + 8, mOld, vOld, mNew + i + LookAhead + 8, vNew + i + LookAhead + 8);
            }
            Vector512<float> m0 = Vector512.Load(mNew + i), v0 = Vector512.Load(vNew + i);
            Vector512<float> gi = Vector512.Load(g + i) * gs;
            Vector512<float> m1 = b1 * m0 + c1 * gi;
            Vector512<float> v1 = b2 * v0 + c2 * gi * gi;
            ok &= Vector512.LessThan(v1, inf);
            ordered &= Vector512.Equals(m1, m1);
            maxM = Avx512F.Max(maxM, m1); minM = Avx512F.Min(minM, m1); maxV = Avx512F.Max(maxV, v1);
            m1.Store(mNew + i);
            v1.Store(vNew + i);
        }
        MergeExtremes512(maxM, minM, maxV, ok, ordered, mNew, vNew, vectorEnd, ref extremes);
        return vectorEnd;
    }

    /// <summary>
    /// Pass 1's sixteen-lane extremes into <paramref name="extremes"/>: merged as two eight-lane halves when no m is NaN
    /// (<paramref name="ordered"/> all-ones), else redone from the buffers eight lanes at a time in the AVX2 kernel's order
    /// (see <see cref="Moments512"/>'s remarks). Both 512-bit kernels end pass 1 here.
    /// </summary>
    private static void MergeExtremes512(Vector512<float> maxM, Vector512<float> minM, Vector512<float> maxV, Vector512<float> ok, Vector512<float> ordered,
        float* mNew, float* vNew, int vectorEnd, ref Extremes extremes)
    {
        if (ordered.AsInt32() == Vector512<int>.AllBitsSet)
        {
            extremes.Merge(maxM.GetLower(), minM.GetLower(), maxV.GetLower(), ok.GetLower());
            extremes.Merge(maxM.GetUpper(), minM.GetUpper(), maxV.GetUpper(), ok.GetUpper());
        }
        else
            for (int j = 0; j < vectorEnd; j += 8) extremes.Add(Avx.LoadVector256(mNew + j), Avx.LoadVector256(vNew + j));
    }

    /// <summary>
    /// Pass 2 (see <see cref="UpdateAndQuantize"/>) sixteen values at a time: the update, the bf16 words, one hash per element
    /// and both moments' stochastic ranks on sixteen lanes, the codes narrowed to bytes with saturation (vpmovusdb, as the
    /// AVX2 kernel's saturating packs). The remainder below sixteen goes to the AVX2 kernel with the key moved on by as many
    /// elements, so its hashes are the ones this loop would have drawn.
    /// </summary>
    private static void UpdateAndQuantize512(float* p, float* m, float* v, byte* mc, byte* vc, ushort* h, int n, Coefficients k, float mInv, float vInv, uint key)
    {
        var mt = new QuantizationVectors.StochasticTables512(DynamicQuantizationMap.Signed);
        var vt = new QuantizationVectors.StochasticTables512(DynamicQuantizationMap.Unsigned);
        var decay = Vector512.Create(k.Decay); var stepSize = Vector512.Create(k.StepSize);
        var invSqrtBias2 = Vector512.Create(k.InvSqrtBias2); var eps = Vector512.Create(k.Epsilon);
        var mi = Vector512.Create(mInv); var vi = Vector512.Create(vInv);
        Vector512<uint> counter = Vector512.Create(key) + Vector512.Create(0u, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), sixteen = Vector512.Create(16u);
        int i = 0;
        for (; i <= n - 16; i += 16, counter += sixteen)
        {
            Vector512<float> m1 = Vector512.Load(m + i), r1 = Vector512.Sqrt(Vector512.Load(v + i));
            var denom = r1 * invSqrtBias2 + eps;
            Vector512<float> p1 = Vector512.Load(p + i) * decay - stepSize * m1 / denom;
            p1.Store(p + i);
            if (h != null) Bf16.Pack(p1).Store(h + i);
            Vector512<float> ym = m1 * mi, yv = r1 * vi;
            var (um, uv) = StochasticRounding.ElementUniforms(counter);
            // √v ≥ +0 (v = β2·v0 + (1 − β2)·g² is −0 only if β2 < 0 and 1 − β2 < 0 at once) times 1 / scale ≥ +0: +0,
            // positive or NaN, never −0, so its magnitude needs no absolute value.
            QuantizationVectors.StochasticRanksOfMoments(ym, mt, um, yv, vt, uv, out Vector512<int> rm, out Vector512<int> rv);
            Avx512F.ConvertToVector128ByteWithSaturation(QuantizationVectors.Codes(rm, ym, signed: true).AsUInt32()).Store(mc + i);
            Avx512F.ConvertToVector128ByteWithSaturation(QuantizationVectors.Codes(rv, yv, signed: false).AsUInt32()).Store(vc + i);
        }
        if (i < n) UpdateAndQuantize(p + i, m + i, v + i, mc + i, vc + i, h == null ? null : h + i, n - i, k, mInv, vInv, key + (uint)i);
    }

    private static partial class Bf16
    {
        /// <summary>
        /// Sixteen values' bf16 bits in order (see <see cref="Of"/>): each value's rounded bits keep the word in their high
        /// half (the carry of the rounding add stays inside the dword), and one vpermw gathers the sixteen high words.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<ushort> Pack(Vector512<float> x)
        {
            Vector512<uint> bits = x.AsUInt32();
            Vector512<uint> rounded = bits + Vector512.Create(0x7FFFu) + ((bits >>> 16) & Vector512<uint>.One);
            Vector512<uint> words = Vector512.ConditionalSelect(Vector512.Equals(x, x).AsUInt32(), rounded, Vector512.Create(0x7FC00000u));
            return Avx512BW.PermuteVar32x16(words.AsUInt16(), HighWords).GetLower();
        }

        /// <summary>vpermw's indices: word 2j + 1 (the high half of dword j) into word j, for j below 16.</summary>
        private static readonly Vector512<ushort> HighWords = Vector512.Create(
            (ushort)1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    }
}

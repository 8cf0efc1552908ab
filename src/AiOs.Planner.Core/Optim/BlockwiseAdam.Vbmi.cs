using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AiOs.Planner.Optim;

/// <summary>
/// Pass 1 of the 512-bit kernel with AVX-512 VBMI (<see cref="BlockwiseKernel.Avx512Vbmi"/>): codes decoded 64 at a time
/// by byte permutes over the maps' values split into four byte planes, then scaled by the same float multiplies the
/// decoded tables do (value × scale for m, (value × scale)² for v), so every result is the other kernels' bit for bit.
/// </summary>
public static unsafe partial class BlockwiseAdam
{
    /// <summary>
    /// The two maps' values as byte planes: plane b (0 … 3, little-endian) of a map holds byte b of each of its 256 values'
    /// bits in code order, 256 bytes, so a plane is four 64-byte registers and a code's byte is one vpermi2b over the
    /// two registers of its half (the code's low seven bits) and a blend on its top bit. Aligned native memory, built once
    /// and kept for the process.
    /// </summary>
    private static class MapPlanes
    {
        /// <summary>Bytes per map: four planes of 256.</summary>
        private const int Bytes = 4 * 256;

        /// <summary>The signed map's (m) and the unsigned map's (v) planes.</summary>
        public static readonly nint Signed = Build(DynamicQuantizationMap.Signed), Unsigned = Build(DynamicQuantizationMap.Unsigned);

        private static nint Build(DynamicQuantizationMap map)
        {
            ReadOnlySpan<float> values = map.Values;
            if (values.Length != 256)
                throw new InvalidOperationException($"The 8-bit codec's byte planes need a map of 256 values; this one has {values.Length}.");
            byte* planes = (byte*)NativeMemory.AlignedAlloc(Bytes, 64);
            for (int c = 0; c < 256; c++)
            {
                uint bits = BitConverter.SingleToUInt32Bits(values[c]);
                for (int b = 0; b < 4; b++) planes[256 * b + c] = (byte)(bits >> (8 * b));
            }
            return (nint)planes;
        }
    }

    /// <summary>
    /// The order vpermb puts 64 codes in before the planes are interleaved: byte 16k + 4j + s takes code 16j + 4k + s (a
    /// transpose of 4 × 4 groups of four), because unpacking bytes then words per 128-bit lane leaves, in the j-th result's
    /// lane k, the four bytes at 16k + 4j … 16k + 4j + 3; so the j-th result holds elements 16j … 16j + 15 in order.
    /// </summary>
    private static readonly Vector512<byte> DecodeOrder = Vector512.Create(
        (byte)0, 1, 2, 3, 16, 17, 18, 19, 32, 33, 34, 35, 48, 49, 50, 51,
        4, 5, 6, 7, 20, 21, 22, 23, 36, 37, 38, 39, 52, 53, 54, 55,
        8, 9, 10, 11, 24, 25, 26, 27, 40, 41, 42, 43, 56, 57, 58, 59,
        12, 13, 14, 15, 28, 29, 30, 31, 44, 45, 46, 47, 60, 61, 62, 63);

    /// <summary>0, 1, … 63: a byte's place in a register, for the mask of a short group's load.</summary>
    private static readonly Vector512<byte> ByteIndices = Vector512.Create(
        (byte)0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
        32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63);

    /// <summary>One plane's bytes for 64 codes: the low half's table where the code's top bit is clear, the high half's where set.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> PlaneBytes(byte* plane, Vector512<byte> codes) =>
        Avx512BW.BlendVariable(Avx512Vbmi.PermuteVar64x8x2(Vector512.Load(plane), codes, Vector512.Load(plane + 64)),
            Avx512Vbmi.PermuteVar64x8x2(Vector512.Load(plane + 128), codes, Vector512.Load(plane + 192)), codes);

    /// <summary>
    /// The map values of 64 codes (whose byte planes are at <paramref name="planes"/>), decoded in vector registers: elements
    /// 0 … 15 in <paramref name="e0"/>, 16 … 31 in <paramref name="e1"/> and so on, each lane's bits the map's value.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Decode64(Vector512<byte> codes, byte* planes, out Vector512<float> e0, out Vector512<float> e1, out Vector512<float> e2, out Vector512<float> e3)
    {
        Vector512<byte> c = Avx512Vbmi.PermuteVar64x8(codes, DecodeOrder);
        Vector512<byte> b0 = PlaneBytes(planes, c), b1 = PlaneBytes(planes + 256, c);
        Vector512<byte> b2 = PlaneBytes(planes + 512, c), b3 = PlaneBytes(planes + 768, c);
        Vector512<ushort> low01 = Avx512BW.UnpackLow(b0, b1).AsUInt16(), high01 = Avx512BW.UnpackHigh(b0, b1).AsUInt16();
        Vector512<ushort> low23 = Avx512BW.UnpackLow(b2, b3).AsUInt16(), high23 = Avx512BW.UnpackHigh(b2, b3).AsUInt16();
        e0 = Avx512BW.UnpackLow(low01, low23).AsSingle();
        e1 = Avx512BW.UnpackHigh(low01, low23).AsSingle();
        e2 = Avx512BW.UnpackLow(high01, high23).AsSingle();
        e3 = Avx512BW.UnpackHigh(high01, high23).AsSingle();
    }

    /// <summary>
    /// Pass 1's per-step constants in registers, made once per block: created inside the group, the JIT broadcast them from
    /// their scalar registers again in every 64 elements (five vbroadcastss on the shuffle port).
    /// </summary>
    private readonly struct MomentConstants(Coefficients k)
    {
        public readonly Vector512<float> GradScale = Vector512.Create(k.GradScale), Beta1 = Vector512.Create(k.Beta1),
            OneMinusBeta1 = Vector512.Create(k.OneMinusBeta1), Beta2 = Vector512.Create(k.Beta2), OneMinusBeta2 = Vector512.Create(k.OneMinusBeta2);
    }

    /// <summary>Sixteen elements of pass 1 from their old moments in registers: new m and v stored, the extremes and the finiteness sum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Group(float* g, float* mNew, float* vNew, Vector512<float> m0, Vector512<float> v0, in MomentConstants k,
        ref Vector512<float> maxM, ref Vector512<float> minM, ref Vector512<float> maxV, ref Vector512<float> unfinite)
    {
        Vector512<float> gi = Vector512.Load(g) * k.GradScale;
        Vector512<float> m1 = k.Beta1 * m0 + k.OneMinusBeta1 * gi;
        Vector512<float> v1 = k.Beta2 * v0 + k.OneMinusBeta2 * gi * gi;
        // (m + v) × 0 is ±0 while m + v is finite and NaN once it is not; added to the running +0 (+0 + −0 is +0) by one FMA.
        unfinite = Avx512F.FusedMultiplyAdd(m1 + v1, Vector512<float>.Zero, unfinite);
        maxM = Avx512F.Max(maxM, m1); minM = Avx512F.Min(minM, m1); maxV = Avx512F.Max(maxV, v1);
        m1.Store(mNew);
        v1.Store(vNew);
    }

    /// <summary>
    /// Pass 1 (see <see cref="Moments512"/>, the same extremes and lanes) with the codes decoded 64 at a time by
    /// <see cref="Decode64"/> straight into registers: no scalar look-ups, no per-block decoded tables, and the buffers only
    /// written with the new moments. Returns how many elements it did (whole groups of sixteen).
    /// </summary>
    private static int Moments512Vbmi(float* g, byte* mc, byte* vc, float mScale, float vScale, float* mNew, float* vNew, int n, Coefficients coefficients, ref Extremes extremes)
    {
        var k = new MomentConstants(coefficients);
        var msv = Vector512.Create(mScale); var vsv = Vector512.Create(vScale);
        Vector512<float> maxM = Vector512<float>.Zero, minM = Vector512<float>.Zero, maxV = Vector512<float>.Zero;
        // Σ s × 0 with s = m + v stays +0 while every s is finite, and turns NaN for good once one is not, as a v of +∞ or
        // NaN or an m of NaN makes it: one add and one FMA per group, where checking v < ∞ and m = m took two compares and
        // two mask-to-vector moves. A block that trips it (its gradients or the scales handed in were not finite, or
        // m + v overflowed) has both checks redone exactly from the buffers below, so the outcome is the other kernels'.
        Vector512<float> unfinite = Vector512<float>.Zero;
        byte* mPlanes = (byte*)MapPlanes.Signed, vPlanes = (byte*)MapPlanes.Unsigned;
        int vectorEnd = n & ~15;
        for (int at = 0; at < vectorEnd; at += 64)
        {
            // 64 codes per moment (a tensor's last few through a masked load, zeros past the end), their old moments in registers,
            // scaled as the decoded tables are (value × scale; (value × scale)² for v), then four groups of sixteen.
            Vector512<byte> mCodes, vCodes;
            if (n - at >= 64)
            {
                mCodes = Vector512.Load(mc + at);
                vCodes = Vector512.Load(vc + at);
            }
            else
            {
                Vector512<byte> inside = Vector512.LessThan(ByteIndices, Vector512.Create((byte)(n - at)));
                mCodes = Avx512BW.MaskLoad(mc + at, inside, Vector512<byte>.Zero);
                vCodes = Avx512BW.MaskLoad(vc + at, inside, Vector512<byte>.Zero);
            }
            Decode64(mCodes, mPlanes, out var m0a, out var m0b, out var m0c, out var m0d);
            Decode64(vCodes, vPlanes, out var r0a, out var r0b, out var r0c, out var r0d);
            r0a *= vsv; r0b *= vsv; r0c *= vsv; r0d *= vsv;
            Group(g + at, mNew + at, vNew + at, m0a * msv, r0a * r0a, k, ref maxM, ref minM, ref maxV, ref unfinite);
            if (at + 16 < vectorEnd) Group(g + at + 16, mNew + at + 16, vNew + at + 16, m0b * msv, r0b * r0b, k, ref maxM, ref minM, ref maxV, ref unfinite);
            if (at + 32 < vectorEnd) Group(g + at + 32, mNew + at + 32, vNew + at + 32, m0c * msv, r0c * r0c, k, ref maxM, ref minM, ref maxV, ref unfinite);
            if (at + 48 < vectorEnd) Group(g + at + 48, mNew + at + 48, vNew + at + 48, m0d * msv, r0d * r0d, k, ref maxM, ref minM, ref maxV, ref unfinite);
        }
        Vector512<float> ok = Vector512<float>.AllBitsSet, ordered = Vector512<float>.AllBitsSet;
        if (unfinite.AsInt32() != Vector512<int>.Zero)
            for (int j = 0; j < vectorEnd; j += 16)
            {
                Vector512<float> m1 = Vector512.Load(mNew + j), v1 = Vector512.Load(vNew + j);
                ok &= Vector512.LessThan(v1, Vector512.Create(float.PositiveInfinity));
                ordered &= Vector512.Equals(m1, m1);
            }
        MergeExtremes512(maxM, minM, maxV, ok, ordered, mNew, vNew, vectorEnd, ref extremes);
        return vectorEnd;
    }
}

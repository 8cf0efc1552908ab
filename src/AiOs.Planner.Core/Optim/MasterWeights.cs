using System.Numerics;
using System.Runtime.InteropServices;

namespace AiOs.Planner.Optim;

/// <summary>How the CPU optimizer stores the fp32 master weights between steps (<c>--master-weights</c>).</summary>
public enum MasterWeights
{
    /// <summary>The whole fp32 master in the optimizer state: 4 bytes per parameter.</summary>
    Fp32,

    /// <summary>
    /// The fp32 master split exactly into the bf16 working parameter (its high half, which the engine keeps and moves anyway)
    /// and a 16-bit remainder in the optimizer state (<see cref="MasterSplit"/>): 2 bytes per parameter in the state.
    /// </summary>
    Split,
}

/// <summary>The bytes each <see cref="MasterWeights"/> keeps in the optimizer state.</summary>
public static class MasterWeightsFormats
{
    /// <summary>Bytes of master per parameter in the optimizer state: 4 (fp32), 2 (split: the remainder only).</summary>
    public static int StateBytesPerParameter(this MasterWeights format) => format == MasterWeights.Split ? 2 : 4;

    /// <summary>Bytes a swapped state of <paramref name="elements"/> parameters holds fewer than with a whole fp32 master (split: 2 per parameter).</summary>
    public static Units.Bytes SwappedStateSaving(this MasterWeights format, long elements) =>
        Units.Bytes.OfElements(elements, 4 - format.StateBytesPerParameter());

    /// <summary>
    /// Bytes an optimizer swap slot of <paramref name="elements"/> parameters holds besides the object and the gradient: with a
    /// split master, the fp32 master rebuilt for the update and the high halves read with the state (6 per parameter).
    /// </summary>
    public static Units.Bytes SlotScratch(this MasterWeights format, long elements) =>
        format == MasterWeights.Split ? Units.Bytes.OfElements(elements, 6) : Units.Bytes.Zero;
}

/// <summary>
/// The exact split of an fp32 value x (bits b) into a bf16 high half and a 16-bit signed remainder:
/// hi = (b + 0x8000) &gt;&gt; 16 (round to nearest on the bit pattern, ties away from zero), lo = (short)(b − (hi &lt;&lt; 16)),
/// and back b = (hi &lt;&lt; 16) + lo, all modulo 2³². Since hi &lt;&lt; 16 = (b + 0x8000) &amp; 0xFFFF0000, b − (hi &lt;&lt; 16)
/// = ((b + 0x8000) &amp; 0xFFFF) − 0x8000 ∈ [−32768, 32767]: the remainder always fits and the join is exact for every
/// bit pattern. A carry out of the mantissa moves into the exponent as rounding should (the largest finite values round
/// to infinity, as round-to-nearest-even does). hi differs from PyTorch's round-to-nearest-even only at exact ties
/// (low half 0x8000 with an even high half, which nearest-even keeps and this rounds up in magnitude). NaN is the one
/// exception to exactness: its hi is a quiet NaN of the same sign and its remainder 0, so a NaN master stays NaN (payload
/// lost) and the forward sees NaN, never the zero or infinity its bit pattern would otherwise round to.
/// </summary>
public static class MasterSplit
{
    /// <summary>The bf16 high half of <paramref name="x"/> (ties away from zero; NaN → quiet NaN).</summary>
    public static ushort Hi(float x)
    {
        uint b = BitConverter.SingleToUInt32Bits(x);
        return float.IsNaN(x) ? (ushort)((b >> 16) | 0x0040) : (ushort)((b + 0x8000u) >> 16);
    }

    /// <summary>The remainder of <paramref name="x"/> below <see cref="Hi"/>: x's bits minus hi's, as a 16-bit signed value (0 for NaN).</summary>
    public static short Lo(float x)
    {
        uint b = BitConverter.SingleToUInt32Bits(x);
        return float.IsNaN(x) ? (short)0 : (short)(b - ((uint)Hi(x) << 16));
    }

    /// <summary>The fp32 value whose high half is <paramref name="hi"/> and remainder <paramref name="lo"/>.</summary>
    public static float Join(ushort hi, short lo) => BitConverter.UInt32BitsToSingle(((uint)hi << 16) + (uint)(int)lo);

    /// <summary>master[i] = Join(hi[i], lo[i]), vectorised.</summary>
    public static void Join(ReadOnlySpan<ushort> hi, ReadOnlySpan<short> lo, Span<float> master)
    {
        if (hi.Length != master.Length || lo.Length != master.Length) throw new ArgumentException("hi, lo and master must have the same length.", nameof(master));
        Span<uint> bits = MemoryMarshal.Cast<float, uint>(master);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            ReadOnlySpan<Vector<ushort>> h = MemoryMarshal.Cast<ushort, Vector<ushort>>(hi);
            ReadOnlySpan<Vector<short>> l = MemoryMarshal.Cast<short, Vector<short>>(lo);
            Span<Vector<uint>> o = MemoryMarshal.Cast<uint, Vector<uint>>(bits);
            for (int v = 0; v < h.Length; v++)
            {
                Vector.Widen(h[v], out Vector<uint> h0, out Vector<uint> h1);
                Vector.Widen(l[v], out Vector<int> l0, out Vector<int> l1);
                o[2 * v] = Vector.ShiftLeft(h0, 16) + Vector.AsVectorUInt32(l0);
                o[2 * v + 1] = Vector.ShiftLeft(h1, 16) + Vector.AsVectorUInt32(l1);
            }
            i = h.Length * Vector<ushort>.Count;
        }
        for (; i < master.Length; i++) bits[i] = ((uint)hi[i] << 16) + (uint)(int)lo[i];
    }

    /// <summary>hi[i], lo[i] = the split of master[i]; <paramref name="hi"/> may be empty (only the remainders wanted).</summary>
    public static void Split(ReadOnlySpan<float> master, Span<ushort> hi, Span<short> lo)
    {
        if (lo.Length != master.Length || (!hi.IsEmpty && hi.Length != master.Length)) throw new ArgumentException("hi, lo and master must have the same length.", nameof(master));
        ReadOnlySpan<uint> bits = MemoryMarshal.Cast<float, uint>(master);
        int i = 0;
        if (Vector.IsHardwareAccelerated && !hi.IsEmpty)
        {
            // Two Vector<uint> of bits narrow into one Vector<ushort> of high halves and one of remainders (low 16 bits kept).
            ReadOnlySpan<Vector<uint>> b = MemoryMarshal.Cast<uint, Vector<uint>>(bits);
            Span<Vector<ushort>> h = MemoryMarshal.Cast<ushort, Vector<ushort>>(hi);
            Span<Vector<ushort>> l = MemoryMarshal.Cast<short, Vector<ushort>>(lo);
            for (int v = 0; v < h.Length; v++)
            {
                var (h0, l0) = SplitVector(b[2 * v]);
                var (h1, l1) = SplitVector(b[2 * v + 1]);
                h[v] = Vector.Narrow(h0, h1);
                l[v] = Vector.Narrow(l0, l1);
            }
            i = h.Length * Vector<ushort>.Count;
        }
        for (; i < bits.Length; i++)
        {
            uint b = bits[i];
            // NaN: exponent all ones and a non-zero mantissa.
            bool nan = (b & 0x7FFFFFFFu) > 0x7F800000u;
            uint h = nan ? (b >> 16) | 0x0040u : (b + 0x8000u) >> 16;
            lo[i] = nan ? (short)0 : (short)(b - (h << 16));
            if (!hi.IsEmpty) hi[i] = (ushort)h;
        }
    }

    /// <summary>The scalar split of <see cref="Split"/> on a vector of bit patterns: (high halves, remainders) in the low 16 bits of each lane.</summary>
    private static (Vector<uint> Hi, Vector<uint> Lo) SplitVector(Vector<uint> b)
    {
        Vector<uint> nan = Vector.GreaterThan(b & new Vector<uint>(0x7FFFFFFFu), new Vector<uint>(0x7F800000u));
        Vector<uint> h = Vector.ConditionalSelect(nan, Vector.ShiftRightLogical(b, 16) | new Vector<uint>(0x0040u),
            Vector.ShiftRightLogical(b + new Vector<uint>(0x8000u), 16));
        return (h, Vector.AndNot(b - Vector.ShiftLeft(h, 16), nan));
    }
}

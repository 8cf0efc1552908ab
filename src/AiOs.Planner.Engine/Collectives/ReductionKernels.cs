using System.Numerics;
using System.Runtime.InteropServices;

namespace AiOs.Planner.Engine.Collectives;

/// <summary>
/// The element-wise arithmetic of <see cref="SharedMemoryCollectives"/>' reductions, vectorised with
/// <see cref="Vector{T}"/>: the same IEEE operations per element as the scalar forms (add, divide, bf16 widening and
/// round-to-nearest-even narrowing), so results are bit-identical to them whatever the vector width.
/// </summary>
internal static class ReductionKernels
{
    /// <summary>acc[i] += values[i].</summary>
    public static void Add(Span<float> acc, ReadOnlySpan<float> values)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var a = MemoryMarshal.Cast<float, Vector<float>>(acc);
            var v = MemoryMarshal.Cast<float, Vector<float>>(values);
            for (int k = 0; k < a.Length; k++) a[k] += v[k];
            i = a.Length * Vector<float>.Count;
        }
        for (; i < acc.Length; i++) acc[i] += values[i];
    }

    /// <summary>acc[i] /= divisor.</summary>
    public static void Divide(Span<float> acc, int divisor)
    {
        float d = divisor;
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var a = MemoryMarshal.Cast<float, Vector<float>>(acc);
            var dv = new Vector<float>(d);
            for (int k = 0; k < a.Length; k++) a[k] /= dv;
            i = a.Length * Vector<float>.Count;
        }
        for (; i < acc.Length; i++) acc[i] /= d;
    }

    /// <summary>acc[i] (+)= the fp32 value of bf16 bits values[i] (exact: the bits shifted up by 16): <see cref="AiOs.Planner.Optim.GradientSums.AddBf16Chunk"/>.</summary>
    public static void AddBf16(Span<float> acc, ReadOnlySpan<ushort> values, bool overwrite) => AiOs.Planner.Optim.GradientSums.AddBf16Chunk(acc, values, overwrite);

    /// <summary>output[i] = the bf16 bits nearest acc[i] (ties to even; NaN as 0x7FC0), as <see cref="BFloat16Bits.FromSingle"/>.</summary>
    public static void ToBf16(ReadOnlySpan<float> acc, Span<ushort> output)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var o = MemoryMarshal.Cast<ushort, Vector<ushort>>(output);
            int step = Vector<float>.Count;
            var half = new Vector<uint>(0x7FFFu);
            var one = new Vector<uint>(1u);
            var nan = new Vector<uint>(0x7FC0u);
            for (int k = 0; k < o.Length; k++, i += 2 * step)
            {
                o[k] = Vector.Narrow(Round(new Vector<float>(acc.Slice(i, step))), Round(new Vector<float>(acc.Slice(i + step, step))));
            }

            Vector<uint> Round(Vector<float> x)
            {
                var bits = Vector.AsVectorUInt32(x);
                var rounded = (bits + half + ((bits >> 16) & one)) >> 16;
                return Vector.ConditionalSelect(Vector.AsVectorUInt32(Vector.Equals(x, x)), rounded, nan);
            }
        }
        for (; i < acc.Length; i++) output[i] = BFloat16Bits.FromSingle(acc[i]);
    }
}

using System.Numerics;
using System.Runtime.InteropServices;

namespace AiOs.Planner.Engine.Optim;

/// <summary>Vectorised helpers on float spans used by gradient accumulation and clipping.</summary>
public static class SpanMath
{
    /// <summary>destination[i] += source[i].</summary>
    public static void AddInPlace(Span<float> destination, ReadOnlySpan<float> source)
    {
        if (destination.Length != source.Length) throw new ArgumentException("Lengths differ.", nameof(source));
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            Span<Vector<float>> d = MemoryMarshal.Cast<float, Vector<float>>(destination);
            ReadOnlySpan<Vector<float>> s = MemoryMarshal.Cast<float, Vector<float>>(source);
            for (int v = 0; v < d.Length; v++) d[v] += s[v];
            i = d.Length * Vector<float>.Count;
        }
        for (; i < destination.Length; i++) destination[i] += source[i];
    }

    /// <summary>Σ x[i]², accumulated in double in index order (so two callers over the same data agree exactly).</summary>
    public static double SumOfSquares(ReadOnlySpan<float> x)
    {
        double sum = 0;
        foreach (float v in x) sum += (double)v * v;
        return sum;
    }
}

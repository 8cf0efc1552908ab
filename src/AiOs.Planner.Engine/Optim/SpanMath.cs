using System.Numerics;
using System.Runtime.InteropServices;

namespace AiOs.Planner.Engine.Optim;

/// <summary>Vectorised helpers on float spans used by gradient accumulation and clipping.</summary>
public static unsafe class SpanMath
{
    /// <summary>destination[i] += source[i], in parallel chunks for long spans.</summary>
    public static void AddInPlace(Span<float> destination, ReadOnlySpan<float> source)
    {
        if (destination.Length != source.Length) throw new ArgumentException("Lengths differ.", nameof(source));
        fixed (float* d = destination, s = source)
        {
            nint dp = (nint)d, sp = (nint)s;
            Chunked.For(destination.Length, (_, start, count) =>
                AddChunk(new Span<float>((float*)dp + start, count), new ReadOnlySpan<float>((float*)sp + start, count)));
        }
    }

    private static void AddChunk(Span<float> destination, ReadOnlySpan<float> source)
    {
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

    /// <summary>
    /// Σ x[i]², accumulated in double in index order within fixed chunks, chunks added in order (so two callers
    /// over the same data agree exactly, whatever the thread count).
    /// </summary>
    public static double SumOfSquares(ReadOnlySpan<float> x)
    {
        var partial = new double[Chunked.Count(x.Length)];
        fixed (float* p = x)
        {
            nint xp = (nint)p;
            Chunked.For(x.Length, (chunk, start, count) =>
            {
                double sum = 0;
                foreach (float v in new ReadOnlySpan<float>((float*)xp + start, count)) sum += (double)v * v;
                partial[chunk] = sum;
            });
        }
        double total = 0;
        foreach (double s in partial) total += s;
        return total;
    }
}

using System.Runtime.CompilerServices;
using System.Numerics;
using System.Runtime.InteropServices;
using AiOs.Planner.Optim;

namespace AiOs.Planner.Engine.Optim;

/// <summary>Vectorised helpers on float spans used by gradient accumulation and clipping.</summary>
public static unsafe class SpanMath
{
    /// <summary>destination[i] += source[i]: vectorised, split evenly over the cores for long spans (<see cref="EvenFor"/>).</summary>
    public static void AddInPlace(Span<float> destination, ReadOnlySpan<float> source)
    {
        if (destination.Length != source.Length) throw new ArgumentException("Lengths differ.", nameof(source));
        fixed (float* d = destination, s = source)
        {
            nint dp = (nint)d, sp = (nint)s;
            EvenFor(destination.Length, (start, count) =>
                AddChunk(new Span<float>((float*)dp + start, count), new ReadOnlySpan<float>((float*)sp + start, count)));
        }
    }

    /// <summary>
    /// accumulator[i] += widen(bf16[i]) (or = with <paramref name="overwrite"/>), split evenly over the cores: the engine adds a
    /// later micro-batch's bf16 gradients into its fp32 sums with it (<see cref="GradientSums.AddBf16"/>, in Core so that
    /// calibration times the same pass).
    /// </summary>
    public static void AddBf16(Span<float> accumulator, ReadOnlySpan<ushort> bf16, bool overwrite = false) => GradientSums.AddBf16(accumulator, bf16, overwrite);

    /// <summary>Element-wise passes below this many elements run inline on the calling thread (the simulator prices the split with the same figure).</summary>
    internal const int MinPart = GradientSums.MinPart;

    /// <summary>Runs <paramref name="body"/>(start, count) in at most one equal part per core (<see cref="GradientSums.EvenParts"/>); element-wise work only.</summary>
    internal static void EvenFor(int length, Action<int, int> body) => GradientSums.EvenParts(length, body);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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
    /// Σ x[i]² of one chunk in double: lanes of <see cref="Vector{T}"/> widened to double and summed per lane, the lanes
    /// then added in order, then the tail. Vectorised because the engine takes every unit's gradient norm on the
    /// gradient path (a scalar double loop cost gpt2-xl 0.3 s per step on 16 cores); the lane order is fixed, so the
    /// result depends on the data alone.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static double SumOfSquaresChunk(ReadOnlySpan<float> x)
    {
        int i = 0;
        double total = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= 2 * Vector<float>.Count)
        {
            Vector<double> a = Vector<double>.Zero, b = Vector<double>.Zero;
            ReadOnlySpan<Vector<float>> v = MemoryMarshal.Cast<float, Vector<float>>(x);
            foreach (Vector<float> f in v)
            {
                Vector.Widen(f, out Vector<double> lo, out Vector<double> hi);
                a += lo * lo;
                b += hi * hi;
            }
            Vector<double> lanes = a + b;
            for (int l = 0; l < Vector<double>.Count; l++) total += lanes[l];
            i = v.Length * Vector<float>.Count;
        }
        for (; i < x.Length; i++) total += (double)x[i] * x[i];
        return total;
    }

    /// <summary>
    /// Σ x[i]², accumulated in double within fixed chunks (<see cref="SumOfSquaresChunk"/>), chunks added in order (so two callers
    /// over the same data agree exactly, whatever the thread count).
    /// </summary>
    public static double SumOfSquares(ReadOnlySpan<float> x)
    {
        fixed (float* p = x)
        {
            nint xp = (nint)p;
            return InChunks(x.Length, (start, count) => SumOfSquaresChunk(new ReadOnlySpan<float>((float*)xp + start, count)));
        }
    }

    /// <summary>Σ of <paramref name="chunkSum"/> over <see cref="Chunked"/>'s fixed chunks of <paramref name="length"/>, made in parallel and added in chunk order.</summary>
    private static double InChunks(int length, Func<int, int, double> chunkSum)
    {
        var partial = new double[Chunked.Count(length)];
        Chunked.For(length, (chunk, start, count) => partial[chunk] = chunkSum(start, count));
        double total = 0;
        foreach (double s in partial) total += s;
        return total;
    }

    /// <summary>
    /// Σ widen(x[i])² of bf16 <paramref name="x"/>: exactly <see cref="SumOfSquares"/> of the widened values (the same
    /// chunks, the same lanes in the same order), without widening them into memory first. The engine's bf16 gradient
    /// store takes each unit's norm with it.
    /// </summary>
    public static double SumOfSquaresBf16(ReadOnlySpan<ushort> x)
    {
        fixed (ushort* p = x)
        {
            nint xp = (nint)p;
            return InChunks(x.Length, (start, count) => SumOfSquaresBf16Chunk(new ReadOnlySpan<ushort>((ushort*)xp + start, count)));
        }
    }

    /// <summary>As <see cref="SumOfSquaresChunk"/> over the widened values: the same Vector&lt;float&gt; sequence, made from bf16 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static double SumOfSquaresBf16Chunk(ReadOnlySpan<ushort> x)
    {
        int i = 0, w = Vector<float>.Count;
        double total = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= 2 * w)
        {
            Vector<double> a = Vector<double>.Zero, b = Vector<double>.Zero;
            void Add(Vector<float> f)
            {
                Vector.Widen(f, out Vector<double> lo, out Vector<double> hi);
                a += lo * lo;
                b += hi * hi;
            }
            int vectors = x.Length / w, v = 0;
            ReadOnlySpan<Vector<ushort>> packed = MemoryMarshal.Cast<ushort, Vector<ushort>>(x);
            for (; v + 1 < vectors; v += 2)
            {
                Vector.Widen(packed[v / 2], out Vector<uint> lo, out Vector<uint> hi);
                Add(Vector.AsVectorSingle(Vector.ShiftLeft(lo, 16)));
                Add(Vector.AsVectorSingle(Vector.ShiftLeft(hi, 16)));
            }
            if (v < vectors)
            {
                // An odd count of float vectors: the last one widened element by element.
                Span<float> last = stackalloc float[w];
                for (int k = 0; k < w; k++) last[k] = BitConverter.UInt32BitsToSingle((uint)x[v * w + k] << 16);
                Add(new Vector<float>(last));
            }
            Vector<double> lanes = a + b;
            for (int l = 0; l < Vector<double>.Count; l++) total += lanes[l];
            i = vectors * w;
        }
        for (; i < x.Length; i++)
        {
            double f = BitConverter.UInt32BitsToSingle((uint)x[i] << 16);
            total += f * f;
        }
        return total;
    }
}

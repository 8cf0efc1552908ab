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
    /// accumulator[i] += widen(bf16[i]) (or = with <paramref name="overwrite"/>): the widening is exact (the bits shifted up
    /// by 16) and each element gets the one fp32 add the scalar loop gives it, so the sums are the same bits; vectorised and
    /// split evenly over the cores. The engine adds a later micro-batch's bf16 gradients into its fp32 sums with it.
    /// </summary>
    public static void AddBf16(Span<float> accumulator, ReadOnlySpan<ushort> bf16, bool overwrite = false)
    {
        if (accumulator.Length != bf16.Length) throw new ArgumentException("Lengths differ.", nameof(bf16));
        fixed (float* a = accumulator)
        fixed (ushort* b = bf16)
        {
            nint ap = (nint)a, bp = (nint)b;
            EvenFor(bf16.Length, (start, count) =>
                Collectives.ReductionKernels.AddBf16(new Span<float>((float*)ap + start, count), new ReadOnlySpan<ushort>((ushort*)bp + start, count), overwrite));
        }
    }

    /// <summary>Element-wise passes below this many elements run inline on the calling thread (the simulator prices the split with the same figure).</summary>
    internal const int MinPart = AiOs.Planner.Simulation.HostPass.EvenMinPart;

    /// <summary>
    /// Runs <paramref name="body"/>(start, count) over [0, <paramref name="length"/>) in at most one part per core, of equal
    /// lengths (multiples of 64 elements, so every part but the last is whole vectors), at least <see cref="MinPart"/> each, on
    /// the process's <see cref="CpuWorkers"/> as <see cref="Chunked"/>'s passes.
    /// For element-wise work only: the parts depend on the core count, so a reduction must use <see cref="Chunked"/>'s fixed
    /// chunks instead. Even parts keep every core busy to the end, where <see cref="Chunked"/>'s fixed 2^20-element chunks
    /// give a gpt2-large layer (19 chunks) a second round on 3 of 16 cores (issue 13's H100 grid: 8–11 ms per later
    /// micro-batch download of a gpt2-large layer, 3 ms for gpt2-medium's 13 chunks; the second round is the suspect).
    /// </summary>
    internal static void EvenFor(int length, Action<int, int> body)
    {
        int parts = Math.Clamp(length / MinPart, 1, Environment.ProcessorCount);
        if (parts == 1)
        {
            body(0, length);
            return;
        }
        // Each part ⌈length / parts⌉ rounded up to whole 64 elements, so the parts never outnumber the cores.
        int size = (int)(((long)length + parts - 1) / parts + 63) & ~63;
        parts = (length + size - 1) / size;
        CpuWorkers.ForCores().For(parts, p =>
        {
            int start = (int)p * size;
            body(start, Math.Min(size, length - start));
        });
    }

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

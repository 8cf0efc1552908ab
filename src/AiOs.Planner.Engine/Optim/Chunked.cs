using AiOs.Planner.Optim;

namespace AiOs.Planner.Engine.Optim;

/// <summary>
/// Splits element-wise work over large spans into fixed chunks run in parallel on every core, on the process's
/// <see cref="CpuWorkers"/> (the threads CPU Adam runs on: one mechanism for the CPU's hot loops, not a second pool).
/// The chunking depends only on the length, never on the thread count, so a reduction combined in chunk order gives
/// the same bits on any machine. Callers pin their spans and rebuild them per chunk from the pointers.
/// </summary>
internal static class Chunked
{
    /// <summary>Elements per chunk: large enough that scheduling costs nothing against the memory traffic.</summary>
    public const int Size = 1 << 20;

    /// <summary>Number of chunks <paramref name="length"/> elements make.</summary>
    public static int Count(int length) => Math.Max(1, (length + Size - 1) / Size);

    /// <summary>
    /// Runs <paramref name="body"/>(chunk, start, count) for every chunk; inline when there is only one. A chunk that throws
    /// ends the pass with its own exception (the first, if several did), not an <see cref="AggregateException"/>, as one
    /// thread's loop would. The body may itself run a chunked pass (<see cref="CpuWorkers"/> passes are re-entrant).
    /// </summary>
    public static void For(int length, Action<int, int, int> body)
    {
        int chunks = Count(length);
        if (chunks == 1)
        {
            body(0, 0, length);
            return;
        }
        CpuWorkers.ForCores().For(chunks, c =>
        {
            int start = (int)c * Size;
            body((int)c, start, Math.Min(Size, length - start));
        });
    }

    /// <summary>
    /// Runs <paramref name="map"/> over matching chunks of <paramref name="source"/> and <paramref name="destination"/> (same
    /// length), in parallel: the pinning and per-chunk spans every element-wise pass here needs, written once.
    /// </summary>
    public static unsafe void Map<TIn, TOut>(ReadOnlySpan<TIn> source, Span<TOut> destination, ChunkMap<TIn, TOut> map)
        where TIn : unmanaged where TOut : unmanaged
    {
        if (destination.Length != source.Length)
            throw new ArgumentException($"The destination holds {destination.Length} elements, not the source's {source.Length}.", nameof(destination));
        fixed (TIn* s = source)
        fixed (TOut* d = destination)
        {
            nint sp = (nint)s, dp = (nint)d;
            For(source.Length, (_, start, count) => map(new ReadOnlySpan<TIn>((TIn*)sp + start, count), new Span<TOut>((TOut*)dp + start, count)));
        }
    }

    /// <summary>
    /// Copies <paramref name="source"/> into the start of <paramref name="destination"/> in parallel chunks: start-up writes
    /// tens of gigabytes into pages never touched before, and one thread faults them in at a few GB/s (llama-2-7b's
    /// optimizer state, 84 GB, took most of a 51 s start-up on the H100 VM).
    /// </summary>
    public static void Copy(ReadOnlySpan<float> source, Span<float> destination)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException($"The destination holds {destination.Length} elements, fewer than the {source.Length} copied.", nameof(destination));
        Map(source, destination[..source.Length], static (from, to) => from.CopyTo(to));
    }

    /// <summary>
    /// Zeroes <paramref name="destination"/> in parallel chunks: at start-up the moments' pages are written for the first time,
    /// which one thread does at the page-fault rate (about 2 GB/s on the CI VM), not memory speed.
    /// </summary>
    public static unsafe void Clear<T>(Span<T> destination) where T : unmanaged
    {
        fixed (T* d = destination)
        {
            nint dp = (nint)d;
            For(destination.Length, (_, start, count) => new Span<T>((T*)dp + start, count).Clear());
        }
    }
}

/// <summary>An element-wise pass over one chunk of <see cref="Chunked.Map"/>.</summary>
internal delegate void ChunkMap<TIn, TOut>(ReadOnlySpan<TIn> source, Span<TOut> destination);

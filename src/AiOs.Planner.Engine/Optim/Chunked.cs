namespace AiOs.Planner.Engine.Optim;

/// <summary>
/// Splits element-wise work over large spans into fixed chunks run in parallel. The chunking depends only on
/// the length, never on the thread count, so a reduction combined in chunk order gives the same bits on any
/// machine. Callers pin their spans and rebuild them per chunk from the pointers.
/// </summary>
internal static class Chunked
{
    /// <summary>Elements per chunk: large enough that scheduling costs nothing against the memory traffic.</summary>
    public const int Size = 1 << 20;

    /// <summary>Number of chunks <paramref name="length"/> elements make.</summary>
    public static int Count(int length) => Math.Max(1, (length + Size - 1) / Size);

    /// <summary>Runs <paramref name="body"/>(chunk, start, count) for every chunk; inline when there is only one.</summary>
    public static void For(int length, Action<int, int, int> body)
    {
        int chunks = Count(length);
        if (chunks == 1)
        {
            body(0, 0, length);
            return;
        }
        Parallel.For(0, chunks, c =>
        {
            int start = c * Size;
            body(c, start, Math.Min(Size, length - start));
        });
    }

    /// <summary>
    /// Copies <paramref name="source"/> into the start of <paramref name="destination"/> in parallel chunks: start-up writes
    /// tens of gigabytes into pages never touched before, and one thread faults them in at a few GB/s (llama-2-7b's
    /// optimizer state, 84 GB, took most of a 51 s start-up on the H100 VM).
    /// </summary>
    public static unsafe void Copy(ReadOnlySpan<float> source, Span<float> destination)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException($"The destination holds {destination.Length} elements, fewer than the {source.Length} copied.", nameof(destination));
        fixed (float* s = source)
        fixed (float* d = destination)
        {
            nint sp = (nint)s, dp = (nint)d;
            For(source.Length, (_, start, count) => new ReadOnlySpan<float>((float*)sp + start, count).CopyTo(new Span<float>((float*)dp + start, count)));
        }
    }
}

namespace AiOs.Planner.Engine.Collectives;

/// <summary>The element type of a collective's buffers.</summary>
public enum CollectiveElement
{
    /// <summary>IEEE fp32, 4 bytes.</summary>
    Float32,

    /// <summary>bfloat16 stored as its raw 16 bits (the top half of an fp32), 2 bytes.</summary>
    BFloat16,

    /// <summary>IEEE fp64, 8 bytes: small reductions whose sums must not lose digits (losses, gradient norms).</summary>
    Float64,
}

/// <summary>How a reduction combines the ranks' values.</summary>
public enum ReduceOperation
{
    /// <summary>The sum over ranks.</summary>
    Sum,

    /// <summary>The sum over ranks divided by the world size (gradient averaging in data parallel).</summary>
    Mean,
}

/// <summary>
/// The collectives ZeRO-3 data parallel needs, over flat buffers of <see cref="CollectiveElement"/>s. Every rank calls
/// the same operations in the same order with the same counts (one step program per rank); a rank that calls another
/// operation, dies or stops answering ends the collective with an error that names it, never a hang.
/// </summary>
/// <remarks>
/// Buffers are raw addresses because the two implementations work on different memory: host memory for
/// <see cref="SharedMemoryCollectives"/>, device memory for <see cref="NcclCollectives"/> (see <see cref="OnDevice"/>).
/// <see cref="CollectiveSpans"/> offers span overloads for host memory. Counts are elements, not bytes.
/// </remarks>
public interface ICollectives : IDisposable
{
    /// <summary>This process's rank, 0 ≤ rank &lt; <see cref="WorldSize"/>.</summary>
    int Rank { get; }

    /// <summary>The number of ranks.</summary>
    int WorldSize { get; }

    /// <summary>Whether buffers are device (GPU) addresses; false: host addresses.</summary>
    bool OnDevice { get; }

    /// <summary>
    /// Every rank's <paramref name="countPerRank"/> elements at <paramref name="send"/>, concatenated in rank order at
    /// <paramref name="receive"/> (<paramref name="countPerRank"/> × <see cref="WorldSize"/> elements) on every rank.
    /// </summary>
    void AllGather(nint send, nint receive, long countPerRank, CollectiveElement element);

    /// <summary>
    /// The reduction over ranks of <paramref name="send"/> (<paramref name="countPerRank"/> × <see cref="WorldSize"/>
    /// elements), of which rank r receives block r (<paramref name="countPerRank"/> elements) at <paramref name="receive"/>.
    /// </summary>
    void ReduceScatter(nint send, nint receive, long countPerRank, CollectiveElement element, ReduceOperation operation);

    /// <summary>The reduction over ranks of <paramref name="count"/> elements at <paramref name="send"/>, at <paramref name="receive"/> on every rank (the two may be the same buffer).</summary>
    void AllReduce(nint send, nint receive, long count, CollectiveElement element, ReduceOperation operation);

    /// <summary>Rank <paramref name="root"/>'s <paramref name="count"/> elements at <paramref name="buffer"/>, copied into every other rank's <paramref name="buffer"/>.</summary>
    void Broadcast(nint buffer, long count, CollectiveElement element, int root);

    /// <summary>Returns once every rank has called it.</summary>
    void Barrier();
}

/// <summary>Sizes of <see cref="CollectiveElement"/>s.</summary>
public static class CollectiveElements
{
    /// <summary>Bytes per element.</summary>
    public static int SizeOf(CollectiveElement element) => element switch
    {
        CollectiveElement.Float32 => 4,
        CollectiveElement.BFloat16 => 2,
        CollectiveElement.Float64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(element), element, "Unknown element type."),
    };
}

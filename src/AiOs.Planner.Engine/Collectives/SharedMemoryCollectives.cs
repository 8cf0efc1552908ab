namespace AiOs.Planner.Engine.Collectives;

/// <summary>
/// <see cref="ICollectives"/> over host memory shared through a memory-mapped file, for CPU tests and CPU runs with
/// several processes (or threads) on one machine. Each collective: every rank copies its part into its own region,
/// a barrier, every rank reads what it needs, a barrier (so no region is overwritten while read); larger buffers go in
/// chunks of the region. Reductions add the ranks' values in rank order in fp32 (bf16 rounded once at the end), so
/// the result is bit-identical on every rank, run after run, whatever the timing; all-reduce equals reduce-scatter
/// then all-gather bit for bit. One thread at a time per instance (one instance per rank).
/// </summary>
public sealed unsafe class SharedMemoryCollectives : ICollectives
{
    private const int OpJoin = 0, OpBarrier = 1, OpAllGather = 2, OpReduceScatter = 3, OpAllReduce = 4, OpBroadcast = 5;

    private readonly SharedMemoryBoard board;
    private long ordinal;
    private float[] scratch = [];

    private SharedMemoryCollectives(SharedMemoryBoard board) => this.board = board;

    /// <summary>Joins the group: rank 0 creates the rendezvous file, every rank waits (up to the timeout) for all to join.</summary>
    /// <exception cref="ArgumentException">The options are unusable (the message names the field).</exception>
    /// <exception cref="CollectiveException">A rank did not join in time, or was started for another world size.</exception>
    public static SharedMemoryCollectives Join(SharedMemoryOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Problem() is { } problem) throw new ArgumentException(problem, nameof(options));
        var board = SharedMemoryBoard.Join(options);
        var collectives = new SharedMemoryCollectives(board);
        try
        {
            collectives.Run(new CollectiveCall(0, OpJoin, CollectiveElement.Float32, 0, 0), chunks: 1, (_, _, _) => { });
        }
        catch
        {
            collectives.Dispose();
            throw;
        }
        return collectives;
    }

    public int Rank => board.Options.Rank;

    public int WorldSize => board.Options.WorldSize;

    public bool OnDevice => false;

    public void AllGather(nint send, nint receive, long countPerRank, CollectiveElement element)
    {
        int size = CollectiveElements.SizeOf(element);
        long chunk = board.Options.RegionBytes / size;
        Run(Call(OpAllGather, element, countPerRank, 0), Chunks(countPerRank, chunk), (phase, offset, length) =>
        {
            long bytes = length * size;
            if (phase == 0) Copy(send + (nint)(offset * size), board.Region(Rank), bytes);
            else
                for (int r = 0; r < WorldSize; r++)
                    Copy(board.Region(r), receive + (nint)((r * countPerRank + offset) * size), bytes);
        }, chunk, countPerRank);
    }

    public void ReduceScatter(nint send, nint receive, long countPerRank, CollectiveElement element, ReduceOperation operation)
    {
        int size = CollectiveElements.SizeOf(element);
        // Each region holds one chunk of every rank's block, so a chunk is a world's share of the region.
        long chunk = board.Options.RegionBytes / size / WorldSize;
        Run(Call(OpReduceScatter, element, countPerRank, (int)operation), Chunks(countPerRank, chunk), (phase, offset, length) =>
        {
            long bytes = length * size;
            if (phase == 0)
                for (int k = 0; k < WorldSize; k++)
                    Copy(send + (nint)((k * countPerRank + offset) * size), board.Region(Rank) + k * bytes, bytes);
            else Reduce(Rank * bytes, receive + (nint)(offset * size), length, element, operation);
        }, chunk, countPerRank);
    }

    public void AllReduce(nint send, nint receive, long count, CollectiveElement element, ReduceOperation operation)
    {
        int size = CollectiveElements.SizeOf(element);
        long chunk = board.Options.RegionBytes / size;
        Run(Call(OpAllReduce, element, count, (int)operation), Chunks(count, chunk), (phase, offset, length) =>
        {
            if (phase == 0) Copy(send + (nint)(offset * size), board.Region(Rank), length * size);
            else Reduce(0, receive + (nint)(offset * size), length, element, operation);
        }, chunk, count);
    }

    public void Broadcast(nint buffer, long count, CollectiveElement element, int root)
    {
        if ((uint)root >= (uint)WorldSize) throw new ArgumentOutOfRangeException(nameof(root), root, $"Root {root} is outside a world of {WorldSize} ranks.");
        int size = CollectiveElements.SizeOf(element);
        long chunk = board.Options.RegionBytes / size;
        Run(Call(OpBroadcast, element, count, root), Chunks(count, chunk), (phase, offset, length) =>
        {
            long bytes = length * size;
            if (phase == 0 && Rank == root) Copy(buffer + (nint)(offset * size), board.Region(root), bytes);
            else if (phase == 1 && Rank != root) Copy(board.Region(root), buffer + (nint)(offset * size), bytes);
        }, chunk, count);
    }

    public void Barrier() => Run(Call(OpBarrier, CollectiveElement.Float32, 0, 0), chunks: 1, (_, _, _) => { });

    /// <summary>
    /// Announces <paramref name="call"/>, then for each chunk: phase 0 (write own region), barrier, phase 1 (read), barrier.
    /// The first barrier also checks that every rank announced the same call.
    /// </summary>
    private void Run(CollectiveCall call, long chunks, Action<int, long, long> phase, long chunk = 0, long count = 0)
    {
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count), count, "A collective's element count cannot be negative.");
        board.Announce(call);
        for (long c = 0; c < chunks; c++)
        {
            long offset = c * chunk;
            long length = Math.Min(chunk, count - offset);
            phase(0, offset, length);
            board.Barrier(call);
            if (c == 0) board.CheckSameCall(call);
            phase(1, offset, length);
            board.Barrier(call);
        }
    }

    /// <summary>The next call; <paramref name="argument"/> is the root of a broadcast or the operation of a reduction, so ranks that disagree on it are caught.</summary>
    private CollectiveCall Call(int operation, CollectiveElement element, long count, int argument)
    {
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count), count, "A collective's element count cannot be negative.");
        CollectiveElements.SizeOf(element);
        return new CollectiveCall(++ordinal, operation, element, count, argument);
    }

    /// <summary>Chunks of a collective; at least one, so that an empty collective still synchronises and is checked.</summary>
    private static long Chunks(long count, long chunk) => Math.Max(1, (count + chunk - 1) / chunk);

    /// <summary>Reduces <paramref name="length"/> elements at <paramref name="regionOffset"/> of every region, in rank order, into <paramref name="target"/>.</summary>
    private void Reduce(long regionOffset, nint target, long length, CollectiveElement element, ReduceOperation operation)
    {
        int n = checked((int)length);
        if (element == CollectiveElement.Float64)
        {
            ReduceDoubles(regionOffset, new Span<double>((void*)target, n), operation);
            return;
        }
        if (scratch.Length < n) scratch = new float[n];
        Span<float> acc = scratch.AsSpan(0, n);
        for (int r = 0; r < WorldSize; r++)
        {
            byte* region = board.Region(r) + regionOffset;
            if (element == CollectiveElement.Float32)
            {
                var values = new ReadOnlySpan<float>(region, n);
                if (r == 0) values.CopyTo(acc);
                else ReductionKernels.Add(acc, values);
            }
            else ReductionKernels.AddBf16(acc, new ReadOnlySpan<ushort>(region, n), overwrite: r == 0);
        }
        if (operation == ReduceOperation.Mean) ReductionKernels.Divide(acc, WorldSize);
        if (element == CollectiveElement.Float32) acc.CopyTo(new Span<float>((void*)target, n));
        else ReductionKernels.ToBf16(acc, new Span<ushort>((void*)target, n));
    }

    /// <summary>fp64: the sum in rank order straight into <paramref name="output"/> (which may be this rank's send buffer: every rank's values are read from the regions).</summary>
    private void ReduceDoubles(long regionOffset, Span<double> output, ReduceOperation operation)
    {
        int n = output.Length;
        for (int r = 0; r < WorldSize; r++)
        {
            var values = new ReadOnlySpan<double>(board.Region(r) + regionOffset, n);
            if (r == 0) values.CopyTo(output);
            else for (int i = 0; i < n; i++) output[i] += values[i];
        }
        if (operation == ReduceOperation.Mean)
            for (int i = 0; i < n; i++) output[i] /= WorldSize;
    }

    private static void Copy(nint from, byte* to, long bytes) => Buffer.MemoryCopy((void*)from, to, bytes, bytes);

    private static void Copy(byte* from, nint to, long bytes) => Buffer.MemoryCopy(from, (void*)to, bytes, bytes);

    public void Dispose() => board.Dispose();
}

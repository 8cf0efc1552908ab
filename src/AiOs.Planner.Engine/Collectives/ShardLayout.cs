namespace AiOs.Planner.Engine.Collectives;

/// <summary>
/// How ZeRO-3 splits one unit's flat parameters (or gradients) across ranks: the unit is padded with zeros to a
/// multiple of the world size, as DeepSpeed pads its partitions, so every rank holds a shard of the same length and
/// all-gather / reduce-scatter need no per-rank counts. Rank r owns elements [r × <see cref="ShardElements"/>,
/// (r + 1) × <see cref="ShardElements"/>) of the padded unit; the tail past <see cref="Elements"/> is padding.
/// </summary>
/// <param name="Elements">The unit's real element count.</param>
/// <param name="WorldSize">The number of ranks.</param>
public sealed record ShardLayout(long Elements, int WorldSize)
{
    /// <summary>Elements each rank holds, padding included: ⌈<see cref="Elements"/> / <see cref="WorldSize"/>⌉.</summary>
    public long ShardElements => Valid().Elements == 0 ? 0 : (Elements + WorldSize - 1) / WorldSize;

    /// <summary>The padded unit's length, a multiple of the world size: what an all-gather of the shards produces.</summary>
    public long PaddedElements => ShardElements * WorldSize;

    /// <summary>Zeros appended to the unit so that it divides evenly.</summary>
    public long Padding => PaddedElements - Elements;

    /// <summary>Where rank <paramref name="rank"/>'s shard starts in the unit, and how many of its elements are real (the rest is padding).</summary>
    public (long Start, long RealElements) RangeOf(int rank)
    {
        if ((uint)rank >= (uint)WorldSize)
            throw new ArgumentOutOfRangeException(nameof(rank), rank, $"Rank {rank} is outside a world of {WorldSize} ranks.");
        long start = rank * ShardElements;
        return (start, Math.Clamp(Elements - start, 0, ShardElements));
    }

    /// <summary>Copies rank <paramref name="rank"/>'s shard of <paramref name="unit"/> into <paramref name="shard"/>, zero-filling the padding.</summary>
    public void Shard<T>(ReadOnlySpan<T> unit, int rank, Span<T> shard) where T : unmanaged
    {
        RequireLength(unit.Length, Elements, "unit");
        RequireLength(shard.Length, ShardElements, "shard");
        (long start, long real) = RangeOf(rank);
        // A rank past the unit's end (fewer elements than ranks) holds padding only; its start lies beyond the unit.
        if (real > 0) unit.Slice((int)start, (int)real).CopyTo(shard);
        shard[(int)real..].Clear();
    }

    /// <summary>The unit from the gathered, padded shards (what <see cref="ICollectives.AllGather"/> produced): the padding dropped.</summary>
    public void Unshard<T>(ReadOnlySpan<T> gathered, Span<T> unit) where T : unmanaged
    {
        RequireLength(gathered.Length, PaddedElements, "gathered");
        RequireLength(unit.Length, Elements, "unit");
        gathered[..(int)Elements].CopyTo(unit);
    }

    private ShardLayout Valid()
    {
        if (WorldSize < 1) throw new ArgumentOutOfRangeException(nameof(WorldSize), WorldSize, "The world size must be at least 1.");
        if (Elements < 0) throw new ArgumentOutOfRangeException(nameof(Elements), Elements, "A unit cannot have a negative element count.");
        return this;
    }

    private static void RequireLength(int actual, long expected, string name)
    {
        if (actual != expected) throw new ArgumentException($"The {name} buffer holds {actual} elements; this layout needs {expected}.", name);
    }
}

namespace AiOs.Planner.Engine.Collectives;

/// <summary>How one rank joins a <see cref="SharedMemoryCollectives"/> group.</summary>
/// <param name="Folder">The rendezvous folder the launcher gave every rank (fresh for each run: rank 0 refuses a used one).</param>
/// <param name="Rank">This rank.</param>
/// <param name="WorldSize">The number of ranks.</param>
public sealed record SharedMemoryOptions(string Folder, int Rank, int WorldSize)
{
    /// <summary>The name of the memory-mapped file in <see cref="Folder"/>.</summary>
    public const string FileName = "collectives.shm";

    /// <summary>How long a rank waits for the others at a collective (and at joining) before it fails naming the missing ranks.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Bytes of each rank's exchange region; larger collectives run in chunks of it. Default 4 MiB.</summary>
    public long RegionBytes { get; init; } = 4L << 20;

    /// <summary>The problem with these options in words that name the field, or null when they are usable.</summary>
    public string? Problem()
    {
        if (string.IsNullOrWhiteSpace(Folder)) return "The rendezvous folder is empty: the launcher must give every rank the same fresh folder.";
        if (WorldSize < 1) return $"The world size is {WorldSize}; it must be at least 1.";
        if (Rank < 0 || Rank >= WorldSize) return $"Rank {Rank} is outside a world of {WorldSize} ranks (0 to {WorldSize - 1}).";
        if (Timeout <= TimeSpan.Zero) return $"The collective timeout is {Timeout}; it must be positive.";
        if (RegionBytes < 4096 || RegionBytes % 64 != 0) return $"The region size is {RegionBytes} bytes; it must be at least 4096 and a multiple of 64.";
        return null;
    }
}

/// <summary>A collective failed because another rank died, left, timed out or called a different operation; <see cref="FailedRank"/> names it.</summary>
public sealed class CollectiveException : Exception
{
    /// <summary>Creates the error for <paramref name="failedRank"/> (null when no single rank is to blame).</summary>
    public CollectiveException(string message, int? failedRank) : base(message) => FailedRank = failedRank;

    public CollectiveException() { }

    public CollectiveException(string message) : base(message) { }

    public CollectiveException(string message, Exception inner) : base(message, inner) { }

    /// <summary>The rank that died, left, did not arrive or disagreed; null when unknown.</summary>
    public int? FailedRank { get; }
}

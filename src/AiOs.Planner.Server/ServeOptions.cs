namespace AiOs.Planner.Server;

/// <summary>What <c>aios serve</c> was started with: where it listens and the only folders the browser may name.</summary>
public sealed record ServeOptions
{
    /// <summary>The default port of <c>aios serve</c>.</summary>
    public const int DefaultPort = 5180;
    /// <summary>The default address: this machine only.</summary>
    public const string DefaultHost = "127.0.0.1";
    /// <summary>Largest request body, in bytes (an uploaded config.json or profile is a few KiB).</summary>
    public const long DefaultMaxBodyBytes = 1 << 20;

    public string Host { get; init; } = DefaultHost;
    /// <summary>TCP port; 0 picks a free one (tests).</summary>
    public int Port { get; init; } = DefaultPort;
    /// <summary>The runs folder (<c>aios train</c>'s <c>runs/</c>) the runs tab reads; null: none.</summary>
    public string? RunsFolder { get; init; }
    /// <summary>Folders an NVMe offload path from the browser may lie in (and that check-nvme may probe).</summary>
    public IReadOnlyList<string> NvmeRoots { get; init; } = [];
    public long MaxBodyBytes { get; init; } = DefaultMaxBodyBytes;

    /// <summary>Whether <see cref="Host"/> is a loopback address (otherwise the server warns: anyone who reaches it may plan and read runs).</summary>
    public bool IsLoopback => Host is "127.0.0.1" or "localhost" or "::1" or "[::1]";
}

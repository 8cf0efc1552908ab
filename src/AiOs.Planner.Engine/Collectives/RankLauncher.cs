using System.Diagnostics;

namespace AiOs.Planner.Engine.Collectives;

/// <summary>What to start once per rank.</summary>
/// <param name="FileName">The program (for a .NET app run by <c>dotnet app.dll</c>, the dotnet host; see <see cref="ForCurrentProcess"/>).</param>
/// <param name="Arguments">Its arguments, the same for every rank (a rank learns who it is from <see cref="RankEnvironment"/>).</param>
/// <param name="WorldSize">How many ranks to start.</param>
public sealed record RankLaunchRequest(string FileName, IReadOnlyList<string> Arguments, int WorldSize)
{
    /// <summary>The rendezvous folder; null: a fresh folder under the system's temporary folder, deleted afterwards.</summary>
    public string? Rendezvous { get; init; }

    /// <summary>Receives each output line (stdout and stderr) with its rank; null: dropped (the failing rank's last lines are still kept for the error).</summary>
    public Action<int, string>? Output { get; init; }

    /// <summary>
    /// The exit code a rank returns when it stopped only because another rank failed (it saw a <see cref="CollectiveException"/>);
    /// such a rank is named as the failing one only when no rank failed otherwise. Null: every failure counts alike.
    /// </summary>
    public int? FollowerExitCode { get; init; }

    /// <summary>
    /// Run each rank in a process group of its own and pass on to every rank each SIGINT, SIGTERM and SIGHUP the launcher
    /// gets (which no longer ends the launcher): a signal to the launcher alone (systemd, docker stop, kill PID) stops the
    /// ranks as it would stop one process, and a signal to the whole group reaches each rank once.
    /// </summary>
    public bool ForwardSignals { get; init; }

    /// <summary>How long, after the first rank fails, the others get to exit on their own (seeing the failure through the collectives) before they are killed.</summary>
    public TimeSpan GracePeriod { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>A request that starts this same program again (its executable, or <c>dotnet</c> and the entry assembly) with <paramref name="arguments"/>.</summary>
    public static RankLaunchRequest ForCurrentProcess(IReadOnlyList<string> arguments, int worldSize)
    {
        string host = System.Environment.ProcessPath ?? throw new InvalidOperationException("This process's executable path is unknown, so it cannot start its ranks.");
        if (Path.GetFileNameWithoutExtension(host) == "dotnet" && System.Reflection.Assembly.GetEntryAssembly()?.Location is { Length: > 0 } entry)
            return new RankLaunchRequest(host, [entry, .. arguments], worldSize);
        return new RankLaunchRequest(host, arguments, worldSize);
    }
}

/// <summary>How a group of ranks ended.</summary>
/// <param name="ExitCode">0 when every rank succeeded; otherwise the first failing rank's exit code.</param>
/// <param name="FailedRank">The first rank that failed (by time of exit), or null.</param>
/// <param name="Error">That rank's last lines of output (its error), or null.</param>
/// <param name="ExitCodes">Every rank's exit code, by rank (ranks ended by the launcher show the signal's code).</param>
public sealed record RankLaunchResult(int ExitCode, int? FailedRank, string? Error, IReadOnlyList<int> ExitCodes)
{
    /// <summary>Whether every rank exited with 0.</summary>
    public bool Succeeded => FailedRank is null;

    /// <summary>One line for the user: all ranks succeeded, or which rank failed with what.</summary>
    public string Describe() => FailedRank is { } r
        ? $"rank {r} failed with exit code {ExitCode}; the other ranks were ended. Rank {r}'s last output:\n{Error}"
        : $"all {ExitCodes.Count} ranks succeeded.";
}

/// <summary>
/// Starts one child process per rank with RANK, WORLD_SIZE, LOCAL_RANK and AIOS_RENDEZVOUS set (as torchrun does),
/// forwards their output, and supervises them: when one exits with a non-zero code the others get a grace period and
/// are then killed, and the result names the failing rank, its exit code and its last lines.
/// </summary>
public static class RankLauncher
{
    /// <summary>Lines of a rank's output kept for the error report.</summary>
    private const int TailLines = 20;

    /// <summary>Runs the group to its end.</summary>
    /// <exception cref="ArgumentException">The world size is below 1.</exception>
    public static RankLaunchResult Run(RankLaunchRequest request, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.WorldSize < 1) throw new ArgumentException($"Cannot launch {request.WorldSize} ranks: --gpus must be at least 1.", nameof(request));
        bool ownFolder = request.Rendezvous is null;
        string folder = request.Rendezvous ?? Path.Combine(Path.GetTempPath(), $"aios-ranks-{System.Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        var ranks = new RankProcess[request.WorldSize];
        var forwarding = new List<System.Runtime.InteropServices.PosixSignalRegistration>();
        try
        {
            if (request.ForwardSignals)
                foreach (var (signal, number) in new[] { (System.Runtime.InteropServices.PosixSignal.SIGINT, 2), (System.Runtime.InteropServices.PosixSignal.SIGTERM, 15), (System.Runtime.InteropServices.PosixSignal.SIGHUP, 1) })
                    forwarding.Add(System.Runtime.InteropServices.PosixSignalRegistration.Create(signal, context =>
                    {
                        context.Cancel = true;
                        foreach (var rank in ranks) rank?.Signal(number);
                    }));
            for (int r = 0; r < ranks.Length; r++)
                ranks[r] = RankProcess.Start(request, new RankEnvironment(r, request.WorldSize, r, folder));
            return Supervise(ranks, request.GracePeriod, request.FollowerExitCode, cancellation);
        }
        finally
        {
            foreach (var registration in forwarding) registration.Dispose();
            foreach (var rank in ranks) rank?.Dispose();
            if (ownFolder) TryDelete(folder);
        }
    }

    private static RankLaunchResult Supervise(RankProcess[] ranks, TimeSpan grace, int? followerCode, CancellationToken cancellation)
    {
        int? failed = null;
        Stopwatch? sinceFailure = null;
        while (ranks.Any(r => !r.Exited))
        {
            if (failed is null)
            {
                // The first to fail is the one whose exit came first, not the lowest rank: the others usually fail because of it.
                failed = ranks.Where(r => r.Exited && r.ExitCode != 0).OrderBy(r => r.ExitTime).Select(r => (int?)r.Rank).FirstOrDefault();
                if (failed is not null || cancellation.IsCancellationRequested) sinceFailure = Stopwatch.StartNew();
            }
            if (sinceFailure is not null && sinceFailure.Elapsed >= grace)
                foreach (var r in ranks.Where(r => !r.Exited)) r.Kill();
            Thread.Sleep(20);
        }
        // The cause is the first rank that failed on its own; one that only saw another go comes after it, whatever the timing.
        failed = ranks.Where(r => r.ExitCode != 0).OrderBy(r => r.ExitCode == followerCode).ThenBy(r => r.ExitTime).Select(r => (int?)r.Rank).FirstOrDefault();
        foreach (var r in ranks) r.WaitForOutput();
        int[] codes = [.. ranks.Select(r => r.ExitCode)];
        return failed is { } f
            ? new RankLaunchResult(codes[f], f, ranks[f].Tail(TailLines), codes)
            : new RankLaunchResult(0, null, null, codes);
    }

    private static void TryDelete(string folder)
    {
        try
        {
            Directory.Delete(folder, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temporary folder is harmless; the result matters more than the cleanup.
        }
    }
}

using System.CommandLine;
using AiOs.Planner.Engine;
using AiOs.Planner.Engine.Collectives;
using AiOs.Planner.Engine.Runs;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary>
/// <c>aios train --gpus N</c>: one process per GPU on this host (on a CPU, N processes, for testing), started and
/// supervised by the command the user ran, each a rank of a data-parallel group (see <c>DataParallel</c> in the engine).
/// Rank 0's run folder is the run; rank r writes its own metrics under <c>&lt;run&gt;/ranks/&lt;id&gt;-rank&lt;r&gt;/</c>.
/// </summary>
internal static class TrainRanks
{
    /// <summary>How long a rank waits for the others at a collective before it fails naming them (on the CPU: start-up and checkpoints included).</summary>
    private static readonly TimeSpan CollectiveTimeout = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Checks <paramref name="request"/>'s settings as every rank would, then starts <paramref name="world"/> ranks with this
    /// command's arguments (plus the run id, so every rank names the same run), prints rank 0's output, and returns rank 0's
    /// exit code, or the first failing rank's with its last lines.
    /// </summary>
    public static int Launch(CliIo io, ParseResult parse, int world, EngineRunRequest request)
    {
        // What every rank would refuse is refused once, here, before any process starts.
        try
        {
            Engine.Execution.EngineSettings.Check(request.Model, request.Settings, request.Options);
        }
        catch (ArgumentException e)
        {
            io.Errors.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
            return ExitCodes.Usage;
        }
        string runId = request.Options.RunId;
        var arguments = parse.Tokens.Select(t => t.Value).ToList();
        if (parse.GetResult("--run-id") is null) arguments.AddRange(["--run-id", runId]);
        io.Errors.MarkupLineInterpolated($"[grey]note:[/] starting {world} ranks (one process each) for run {runId}; rank 0's output follows.");
        return LaunchSelf(io, arguments, world);
    }

    /// <summary>
    /// Starts this program once per rank with <paramref name="arguments"/>, prints rank 0's output, and returns rank 0's exit
    /// code, or the first rank's that failed on its own (one that only saw another fail exits <see cref="ExitCodes.OtherRankFailed"/>)
    /// with its last lines.
    /// </summary>
    public static int LaunchSelf(CliIo io, IReadOnlyList<string> arguments, int world)
    {
        var launch = RankLaunchRequest.ForCurrentProcess(arguments, world) with
        {
            Output = (rank, line) =>
            {
                if (rank == 0) io.Console.WriteLine(line);
            },
            GracePeriod = TimeSpan.FromSeconds(30),
            FollowerExitCode = ExitCodes.OtherRankFailed,
            ForwardSignals = true,
        };
        RankLaunchResult result = RankLauncher.Run(launch);
        bool stopped = result.ExitCode is ExitCodes.Interrupted or ExitCodes.Terminated or ExitCodes.HungUp && result.ExitCodes.All(c => c == result.ExitCode);
        // A signal passed on to every rank stops them all the same way: rank 0's summary says so; that is no failure.
        if (stopped) io.Errors.MarkupLineInterpolated($"[grey]note:[/] all {world} ranks stopped on the signal (exit code {result.ExitCode}).");
        else if (!result.Succeeded) io.Errors.MarkupLineInterpolated($"[red]error:[/] {result.Describe()}");
        return result.ExitCode;
    }

    /// <summary>Joins this rank's group: shared memory on a CPU, NCCL on a GPU (the rank's local GPU).</summary>
    public static ICollectives Join(RankEnvironment rank, string device) => device == "cpu"
        ? SharedMemoryCollectives.Join(rank.SharedMemory() with { Timeout = CollectiveTimeout })
        : NcclCollectives.Join(new NcclOptions(rank.Rendezvous, rank.Rank, rank.WorldSize, rank.LocalRank, 0));

    /// <summary>The device a rank trains on: its own GPU (cuda:LOCAL_RANK), or the CPU.</summary>
    public static string DeviceOf(RankEnvironment rank, string device) => device == "cpu" ? device : $"cuda:{rank.LocalRank}";

    /// <summary>
    /// <paramref name="request"/> as rank <paramref name="rank"/> runs it: with the group's collectives, the group's checkpoint
    /// folder, the checkpoint to resume resolved the same way on every rank, and (above rank 0) a run folder of its own inside
    /// rank 0's, under an id of its own (its swap folder too).
    /// </summary>
    public static EngineRunRequest ForRank(EngineRunRequest request, RankEnvironment rank, ICollectives group)
    {
        string runId = request.Options.RunId;
        string runFolder = Path.GetFullPath(Path.Combine(request.RunsRoot, runId));
        string? resume = request.ResumeFrom is { } from ? Path.GetFullPath(ResumeTarget.Resolve(request.RunsRoot, from).Checkpoint) : null;
        var shared = request with
        {
            Ranks = group,
            CheckpointsFolder = Path.Combine(runFolder, "checkpoints"),
            ResumeFrom = resume,
            Options = request.Options with { Device = DeviceOf(rank, request.Options.Device) },
        };
        return rank.Rank == 0 ? shared : shared with
        {
            RunsRoot = Path.Combine(runFolder, "ranks"),
            GroupFolder = runFolder,
            Options = shared.Options with { RunId = $"{runId}-rank{rank.Rank}" },
        };
    }
}

using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Records;

namespace AiOs.Planner.Cli;

/// <summary>Process exit codes, one meaning each, so scripts can tell a typo from a plan that does not fit.</summary>
/// <remarks>
/// A run stopped by a signal exits with the shell's convention, 128 + the signal's number (what the process would have
/// returned had the signal killed it), after its summary is written: SIGHUP 129, SIGINT 130, SIGTERM 143.
/// </remarks>
public static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>An unexpected failure inside the tool.</summary>
    public const int Failure = 1;
    /// <summary>Bad flags or input files: fix the command.</summary>
    public const int Usage = 2;
    /// <summary>The command ran, and the answer is "no": the plan does not fit, the folder is unusable.</summary>
    public const int Infeasible = 3;
    /// <summary>
    /// <c>aios check-nvme</c> with --model and --hardware: the folder cannot hold the swap files, and the plan falls back to
    /// CPU offload (what <c>aios train</c> would do); --no-fallback turns this into <see cref="Infeasible"/>.
    /// </summary>
    public const int FellBackToCpu = 5;
    /// <summary><c>aios train</c>: a step's loss or gradients were not finite; the run stopped without applying it (summary.json names the step).</summary>
    public const int Diverged = 4;
    /// <summary><c>aios train --gpus N</c>: this rank stopped because another rank failed or left (the launcher names that rank and its error).</summary>
    public const int OtherRankFailed = 6;
    /// <summary>Stopped by SIGHUP (the terminal or SSH session went away).</summary>
    public const int HungUp = 129;
    /// <summary>Interrupted (Ctrl-C, SIGINT).</summary>
    public const int Interrupted = 130;
    /// <summary>Stopped by SIGTERM (SLURM, Kubernetes, docker stop, systemd).</summary>
    public const int Terminated = 143;

    /// <summary>The exit code of a run stopped by <paramref name="signal"/> (SIGINT, SIGTERM, SIGHUP); <see cref="Interrupted"/> for any other stop.</summary>
    public static int ForSignal(string? signal) => signal switch
    {
        "SIGHUP" => HungUp,
        "SIGTERM" => Terminated,
        _ => Interrupted,
    };

    /// <summary>The exit code of a training run that returned <paramref name="summary"/>.</summary>
    public static int Of(RunSummary summary)
    {
        ArgumentNullException.ThrowIfNull(summary);
        if (summary.NonFiniteStep is not null) return Diverged;
        if (summary.Completed) return Ok;
        return summary.StoppedBy is null && summary.Error is not null ? Failure : ForSignal(summary.StoppedBy);
    }
}

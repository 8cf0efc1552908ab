using System.Runtime.InteropServices;

namespace AiOs.Planner.Engine.Runs;

/// <summary>
/// Routes SIGINT (Ctrl-C), SIGTERM (SLURM, Kubernetes, docker stop, systemd) and SIGHUP (a dropped SSH session) to one
/// <see cref="RunStop"/>, so all three stop the run the same way: after the step in progress, with a checkpoint when the
/// run saves them, a summary and cleanup. The stop is bounded: if the run has not ended <c>grace</c> after the first
/// signal, or a second signal comes, the summary is written as it stands and <c>endProcess</c> is called (the CLI exits
/// with 128 + the signal's number); the step in progress is then abandoned and its swap folder may remain.
/// </summary>
public sealed partial class StopSignals : IDisposable
{
    private readonly RunStop _stop;
    private readonly TimeSpan _grace;
    private readonly Action<string> _say;
    private readonly Action<string> _endProcess;
    private readonly PosixSignalRegistration[] _registrations;
    private readonly object _gate = new();
    private Timer? _deadline;
    private bool _ending;

    /// <summary>Registers the handlers (they replace the runtime's default of ending the process at once).</summary>
    /// <param name="stop">The run to stop.</param>
    /// <param name="grace">How long the run may take to stop after the first signal.</param>
    /// <param name="say">Told what happens (a line for the console).</param>
    /// <param name="endProcess">Ends the process, given the signal's name, once the summary is written; called at most once.</param>
    public StopSignals(RunStop stop, TimeSpan grace, Action<string> say, Action<string> endProcess)
    {
        ArgumentNullException.ThrowIfNull(stop);
        _stop = stop;
        _grace = grace;
        _say = say;
        _endProcess = endProcess;
        _registrations = new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP }
            .Select(signal => PosixSignalRegistration.Create(signal, OnSignal)).ToArray();
    }

    /// <summary>The signal's conventional name (SIGINT, SIGTERM, SIGHUP).</summary>
    public static string NameOf(PosixSignal signal) => signal switch
    {
        PosixSignal.SIGINT => "SIGINT",
        PosixSignal.SIGTERM => "SIGTERM",
        PosixSignal.SIGHUP => "SIGHUP",
        _ => signal.ToString(),
    };

    private void OnSignal(PosixSignalContext context)
    {
        // Keep the runtime from ending the process: the run ends itself, bounded by the grace period.
        context.Cancel = true;
        string name = NameOf(context.Signal);
        if (_stop.Request(name))
        {
            _say($"{name}: stopping after the step in progress (checkpoint, summary, cleanup); within {_grace.TotalSeconds:0} s, or at once on another signal.");
            lock (_gate) _deadline = new Timer(_ => EndNow($"the run did not stop within {_grace.TotalSeconds:0} s of {name}"), null, _grace, Timeout.InfiniteTimeSpan);
            return;
        }
        EndNow($"a second signal ({name}) came while the run was stopping after {_stop.Reason}");
    }

    /// <summary>Writes the summary as it stands and ends the process (once), naming what was abandoned.</summary>
    private void EndNow(string why)
    {
        lock (_gate)
        {
            if (_ending) return;
            _ending = true;
        }
        _stop.WriteSummaryNow($"Stopped by {_stop.Reason}: {why}, so the step in progress was abandoned (no checkpoint of it; the swap folder may remain).");
        _say($"Ending now: {why}.");
        _endProcess(_stop.Reason ?? "SIGTERM");
    }

    /// <summary>
    /// Ends the process with <paramref name="code"/> at once (<c>_exit</c>), for use once the summary is written. Not
    /// <see cref="Environment.Exit(int)"/>: that runs libtorch's static destructors while the abandoned step is still inside
    /// libtorch on another thread, which then fails with an internal assertion and a native stack on stderr.
    /// </summary>
    public static void ExitNow(int code)
    {
        Console.Out.Flush();
        Console.Error.Flush();
        ExitProcess(code);
    }

    [LibraryImport("libc", EntryPoint = "_exit")]
    private static partial void ExitProcess(int status);

    /// <summary>Unregisters the handlers and the deadline; the run has ended by itself.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _ending = true;
            _deadline?.Dispose();
        }
        foreach (PosixSignalRegistration r in _registrations) r.Dispose();
    }
}

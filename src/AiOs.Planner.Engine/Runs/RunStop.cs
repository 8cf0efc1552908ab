using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Records;

namespace AiOs.Planner.Engine.Runs;

/// <summary>
/// Stops a run from outside (a signal handler, a test). The first <see cref="Request"/> makes the run stop after the
/// step in progress (checkpoint with --save-every, summary, cleanup) and writes an interim summary at once, so a run
/// killed hard before it stops still leaves one; <see cref="WriteSummaryNow"/> writes it again for a caller that
/// cannot wait for the step to finish (the grace period ran out) and is about to end the process.
/// </summary>
public sealed class RunStop : IDisposable
{
    private readonly CancellationTokenSource _cancel = new();
    private readonly object _gate = new();
    private Func<string?, RunSummary>? _writeSummary;
    private string? _reason;

    /// <summary>Cancelled by the first <see cref="Request"/>.</summary>
    public CancellationToken Token => _cancel.Token;

    /// <summary>What asked the run to stop (for example "SIGTERM"); null until asked.</summary>
    public string? Reason
    {
        get { lock (_gate) return _reason; }
    }

    /// <summary>Asks the run to stop after its current step; true for the first request, false for a repeat (the reason stays the first).</summary>
    public bool Request(string reason)
    {
        Func<string?, RunSummary>? write;
        lock (_gate)
        {
            if (_reason is not null) return false;
            _reason = reason;
            write = _writeSummary;
        }
        _cancel.Cancel();
        TryWrite(write, null);
        return true;
    }

    /// <summary>Writes the summary now with <paramref name="error"/> (why the run ends without finishing its step); null when the run has not started writing.</summary>
    public RunSummary? WriteSummaryNow(string error)
    {
        Func<string?, RunSummary>? write;
        lock (_gate) write = _writeSummary;
        return TryWrite(write, error);
    }

    /// <summary>Called by the run once its folder is locked: how to write its summary from another thread.</summary>
    internal void Attach(Func<string?, RunSummary>? writeSummary)
    {
        bool requested;
        lock (_gate)
        {
            _writeSummary = writeSummary;
            requested = _reason is not null;
        }
        if (requested && writeSummary is not null) TryWrite(writeSummary, null);
    }

    /// <summary>An interim summary is best effort: the run's own final summary follows, and a failure here must not mask the stop.</summary>
    private static RunSummary? TryWrite(Func<string?, RunSummary>? write, string? error)
    {
        if (write is null) return null;
        try
        {
            return write(error);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _cancel.Dispose();
}

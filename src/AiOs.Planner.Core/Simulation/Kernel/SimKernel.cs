using AiOs.Planner.Units;

namespace AiOs.Planner.Simulation.Kernel;

/// <summary>What a process waits for next: a span of simulated time, or a signal.</summary>
public readonly struct Wait
{
    private Wait(SimDuration delay, Signal? signal)
    {
        Delay = delay;
        Signal = signal;
    }

    public SimDuration Delay { get; }
    public Signal? Signal { get; }

    /// <summary>Resume after <paramref name="delay"/> of simulated time.</summary>
    public static Wait For(SimDuration delay) => new(delay, null);

    /// <summary>Resume when <paramref name="signal"/> has fired (at once if it already has).</summary>
    public static Wait Until(Signal signal) => new(SimDuration.Zero, signal);
}

/// <summary>A one-shot event that processes wait on; it fires once and stays fired.</summary>
public sealed class Signal
{
    internal List<int>? Waiters { get; set; }

    public bool Fired { get; internal set; }

    /// <summary>When it fired, in nanoseconds since the start of the simulation.</summary>
    public long FiredAt { get; internal set; }
}

/// <summary>
/// A small discrete-event kernel: processes are iterators that yield <see cref="Wait"/>s; simulated time is
/// integer nanoseconds; ties are broken by the order in which processes were scheduled, so the same
/// inputs always give the same trace.
/// </summary>
public sealed class SimKernel
{
    private readonly List<IEnumerator<Wait>> _processes = [];
    private readonly PriorityQueue<int, (long Time, long Sequence)> _agenda = new();
    private long _sequence;

    /// <summary>Current simulated time, nanoseconds since start.</summary>
    public long Now { get; private set; }

    /// <summary>Processes that have not finished when <see cref="Run"/> returned (blocked forever: a deadlock).</summary>
    public int Unfinished { get; private set; }

    /// <summary>Schedules <paramref name="process"/> to start at the current time.</summary>
    public void Start(IEnumerable<Wait> process)
    {
        _processes.Add(process.GetEnumerator());
        Unfinished++;
        Schedule(_processes.Count - 1, Now);
    }

    /// <summary>Fires <paramref name="signal"/> now and wakes its waiters in the order they began waiting.</summary>
    public void Fire(Signal signal)
    {
        if (signal.Fired) return;
        signal.Fired = true;
        signal.FiredAt = Now;
        if (signal.Waiters is null) return;
        foreach (int waiter in signal.Waiters) Schedule(waiter, Now);
        signal.Waiters = null;
    }

    /// <summary>Runs until no process can advance.</summary>
    public void Run()
    {
        while (_agenda.TryDequeue(out int id, out var at))
        {
            Now = at.Time;
            Advance(id);
        }
    }

    private void Advance(int id)
    {
        var process = _processes[id];
        while (true)
        {
            if (!process.MoveNext())
            {
                Unfinished--;
                process.Dispose();
                return;
            }
            var wait = process.Current;
            if (wait.Signal is { } signal)
            {
                if (signal.Fired) continue;
                (signal.Waiters ??= []).Add(id);
                return;
            }
            if (wait.Delay.Nanoseconds <= 0) continue;
            Schedule(id, Now + wait.Delay.Nanoseconds);
            return;
        }
    }

    private void Schedule(int id, long time) => _agenda.Enqueue(id, (time, _sequence++));
}

/// <summary>A capacity container: tracks the level of one memory tier over time and its peak.</summary>
public sealed class LevelTracker
{
    private readonly List<(long Time, long Level)>? _history;

    public LevelTracker(long initial, bool keepHistory)
    {
        Level = Peak = initial;
        if (keepHistory) _history = [(0, initial)];
    }

    public long Level { get; private set; }
    public long Peak { get; private set; }
    public long PeakAt { get; private set; }

    /// <summary>Level after each change, when history is kept.</summary>
    public IReadOnlyList<(long Time, long Level)> History => _history ?? [];

    public void Change(long time, long delta)
    {
        Level += delta;
        if (Level > Peak)
        {
            Peak = Level;
            PeakAt = time;
        }
        _history?.Add((time, Level));
    }
}

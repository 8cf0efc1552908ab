using AiOs.Planner.Units;

namespace AiOs.Planner.Simulation.Kernel;

/// <summary>What a process waits for next: a span of simulated time, or a signal.</summary>
public readonly struct Wait
{
    private Wait(long delay, int signal)
    {
        DelayNs = delay;
        Signal = signal;
    }

    /// <summary>Nanoseconds to wait, when <see cref="Signal"/> is negative.</summary>
    public long DelayNs { get; }

    /// <summary>The signal to wait for, or -1.</summary>
    public int Signal { get; }

    /// <summary>Resume after <paramref name="delay"/> of simulated time.</summary>
    public static Wait For(SimDuration delay) => new(delay.Nanoseconds, -1);

    /// <summary>Resume when signal <paramref name="signal"/> has fired (at once if it already has).</summary>
    public static Wait Until(int signal) => new(0, signal);
}

/// <summary>
/// A small discrete-event kernel: processes are iterators that yield <see cref="Wait"/>s; simulated time is
/// integer nanoseconds; ties are broken by the order in which processes were scheduled, so the same
/// inputs always give the same trace.
/// </summary>
public sealed class SimKernel
{
    private readonly List<IEnumerator<Wait>> _processes = [];
    private readonly List<int> _nextWaiter = [];
    private readonly PriorityQueue<int, (long Time, long Sequence)> _agenda = new();
    private readonly bool[] _fired;
    private readonly long[] _firedAt;
    private readonly int[] _firstWaiter, _lastWaiter;
    private long _sequence;

    /// <param name="signals">One-shot signals, numbered 0..signals-1, that processes can wait on and fire.</param>
    public SimKernel(int signals = 0)
    {
        _fired = new bool[signals];
        _firedAt = new long[signals];
        _firstWaiter = new int[signals];
        _lastWaiter = new int[signals];
        Array.Fill(_firstWaiter, -1);
        Array.Fill(_lastWaiter, -1);
    }

    public bool Fired(int signal) => _fired[signal];

    /// <summary>When <paramref name="signal"/> fired, nanoseconds since start.</summary>
    public long FiredAt(int signal) => _firedAt[signal];

    /// <summary>Current simulated time, nanoseconds since start.</summary>
    public long Now { get; private set; }

    /// <summary>Processes that have not finished when <see cref="Run"/> returned (blocked forever: a deadlock).</summary>
    public int Unfinished { get; private set; }

    /// <summary>Schedules <paramref name="process"/> to start at the current time.</summary>
    public void Start(IEnumerable<Wait> process)
    {
        _processes.Add(process.GetEnumerator());
        _nextWaiter.Add(-1);
        Unfinished++;
        Schedule(_processes.Count - 1, Now);
    }

    /// <summary>Fires <paramref name="signal"/> now and wakes its waiters in the order they began waiting.</summary>
    public void Fire(int signal)
    {
        if (_fired[signal]) return;
        _fired[signal] = true;
        _firedAt[signal] = Now;
        for (int waiter = _firstWaiter[signal]; waiter >= 0;)
        {
            int next = _nextWaiter[waiter];
            _nextWaiter[waiter] = -1;
            Schedule(waiter, Now);
            waiter = next;
        }
        _firstWaiter[signal] = _lastWaiter[signal] = -1;
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
            int signal = wait.Signal;
            if (signal >= 0)
            {
                if (_fired[signal]) continue;
                // Waiters wake in the order they began waiting: append to the signal's chain.
                if (_lastWaiter[signal] < 0) _firstWaiter[signal] = id;
                else _nextWaiter[_lastWaiter[signal]] = id;
                _lastWaiter[signal] = id;
                return;
            }
            if (wait.DelayNs <= 0) continue;
            Schedule(id, Now + wait.DelayNs);
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

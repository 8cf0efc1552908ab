using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace AiOs.Planner.Optim;

/// <summary>
/// The process's one mechanism for the CPU's chunked hot loops: a fixed set of threads that run one chunked pass at a time,
/// the caller and <c>threads − 1</c> workers claiming chunks from one counter until none is left. CPU Adam (fp32 and 8-bit)
/// and the engine's fixed-chunk passes (<c>Chunked</c>: start-up copies and clears, norms, the 8-bit encode, split masters)
/// all run on it. Issue 13: the engine makes one update call per sub-group, and <c>Parallel.For</c> hands each call to the
/// thread pool, whose sleeping workers wake one after another (each woken worker asks for the next), so on many cores the
/// last ones join a short call late: the suspect for the ≈ 1.2 ms per call that two unit sizes suggested on the H100 VM's
/// 16 cores (on 2 cores the hand-off measured 1–10 µs against 0.3 µs here: docs/benchmarks.md, "CPU Adam per call"). These
/// workers instead stay in place between calls, all woken by one signal, and spin a short while (<see cref="SpinAfterPass"/>)
/// after a pass so the next sub-group's call, a few microseconds later, finds them awake. Which thread runs a chunk changes
/// nothing: the caller fixes the chunks (from the length alone), and each chunk's work is its own (element-wise, or a
/// partial result the caller combines in chunk order), so every thread count gives the same bits.
/// </summary>
/// <remarks>
/// One set per thread count per process (<see cref="Shared"/>), like <c>ArrayPool.Shared</c>: the threads are a process
/// resource, and a set per optimizer would multiply them. Each pass is its own object with its own chunk counter, so a
/// worker that comes late to a pass finds its chunks taken and does nothing, and two callers' passes at once both finish
/// with the workers' help: a worker takes the newest pass that still has chunks, then the older ones, and after each chunk
/// it looks again once a newer pass has been published (a norm or gradient-sum pass published during a CPU Adam pass gets
/// the workers as they finish their current update chunk, and none is left to its caller alone while a worker is idle). That also makes a pass
/// re-entrant: a chunk that itself runs a pass (on this set or another) is that pass's caller, claims its chunks and so
/// finishes it with or without help, then goes back to its own pass, whose caller is still claiming chunks; nothing waits
/// on a thread that is not running a chunk. A pass cannot be cancelled: it always runs every chunk, even after one threw.
/// The threads are background threads and block (no CPU) once the spin runs out.
/// </remarks>
public sealed class CpuWorkers
{
    /// <summary>How long a worker spins for the next pass before it blocks: longer than the gap between two sub-groups' calls.</summary>
    public static readonly TimeSpan SpinAfterPass = TimeSpan.FromMicroseconds(200);

    private static readonly ConcurrentDictionary<int, CpuWorkers> Sets = new();

    private readonly int _threads;
    private readonly object _gate = new();
    private readonly long _spinTicks = (long)(SpinAfterPass.TotalSeconds * Stopwatch.Frequency);
    /// <summary>The passes whose callers have not returned, oldest first; replaced whole under <see cref="_gate"/>, read without it.</summary>
    private volatile Pass[] _active = [];
    /// <summary>Counts passes published: a worker that found no work waits for it to change.</summary>
    private long _published;

    private CpuWorkers(int threads)
    {
        _threads = threads;
        for (int i = 1; i < threads; i++)
            new Thread(Work) { IsBackground = true, Name = $"aios-cpu-workers-{threads}-{i}" }.Start();
    }

    /// <summary>The process's set of <paramref name="threads"/> threads (the caller counts as one), started at its first use.</summary>
    /// <remarks>More threads than cores only take turns on them: callers pass at most <see cref="Environment.ProcessorCount"/> (<see cref="ForCores"/>).</remarks>
    public static CpuWorkers Shared(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        return Sets.GetOrAdd(threads, static t => new CpuWorkers(t));
    }

    /// <summary>
    /// Threads of the set that passes asking for no count run on (<see cref="ForCores"/> without one): every core unless the
    /// engine gives its CPU update fewer (<see cref="UseForEveryPass"/>).
    /// </summary>
    public static int DefaultThreads => Volatile.Read(ref s_defaultThreads) is > 0 and var n ? n : Environment.ProcessorCount;

    /// <summary>The count the innermost <see cref="UseForEveryPass"/> scope set; 0 for every core.</summary>
    private static int s_defaultThreads;

    /// <summary>
    /// Makes every pass that names no thread count (gradient sums, norms, copies) run on the set of <paramref name="threads"/>
    /// until the returned scope is disposed, which restores the count before it. The engine takes one with its CPU update's
    /// threads when the update runs beside the GPU's work (every core but the launching thread's): the update's passes and
    /// the others then share one set, and a worker that finishes a chunk moves to the newest pass with work left, so a
    /// gradient sum published during an update gets the workers as they finish their update chunks. With two sets (15
    /// threads for the update, 16 for the rest) 31 threads took turns on 16 cores. Any count gives the same bits (see the
    /// class remarks); only the speed changes. Scopes are process-wide: nest them, do not interleave them across threads.
    /// </summary>
    public static IDisposable UseForEveryPass(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        int before = Interlocked.Exchange(ref s_defaultThreads, threads);
        return new DefaultScope(before);
    }

    /// <summary>Restores the default thread count it replaced, once.</summary>
    private sealed class DefaultScope(int before) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) Volatile.Write(ref s_defaultThreads, before);
        }
    }

    /// <summary>The set for up to <paramref name="threads"/> threads (default: <see cref="DefaultThreads"/>), capped at the core count.</summary>
    public static CpuWorkers ForCores(int? threads = null)
    {
        int wanted = threads ?? DefaultThreads;
        ArgumentOutOfRangeException.ThrowIfLessThan(wanted, 1, nameof(threads));
        return Shared(Math.Min(wanted, Environment.ProcessorCount));
    }

    /// <summary>Threads a pass runs on, the caller's included.</summary>
    public int Threads => _threads;

    /// <summary>
    /// Runs <paramref name="body"/>(chunk) for chunks 0 … <paramref name="chunks"/> − 1, each once, on the caller and the
    /// workers; returns when all have run. With one thread or one chunk, on the caller alone.
    /// </summary>
    /// <remarks>
    /// A chunk that throws ends the pass with its own exception (the first, if several did; its stack trace kept), not an
    /// <see cref="AggregateException"/>, as one thread's loop would: after every chunk has run or failed.
    /// </remarks>
    public void For(long chunks, Action<long> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        if (_threads == 1 || chunks <= 1)
        {
            // As the workers' pass: every chunk runs, then the first failure is thrown.
            ExceptionDispatchInfo? failure = null;
            for (long c = 0; c < chunks; c++)
            {
                try
                {
                    body(c);
                }
                catch (Exception e)
                {
                    failure ??= ExceptionDispatchInfo.Capture(e);
                }
            }
            failure?.Throw();
            return;
        }
        var pass = new Pass(body, chunks, _spinTicks);
        lock (_gate)
        {
            _active = [.. _active, pass];
            Interlocked.Increment(ref _published);
            Monitor.PulseAll(_gate);
        }
        try
        {
            pass.Run();
            pass.WaitAll();
        }
        finally
        {
            lock (_gate) _active = [.. _active.Where(p => p != pass)];
        }
        pass.Failure?.Throw();
    }

    /// <summary>The newest active pass with chunks left to claim, else null.</summary>
    private Pass? WithWork()
    {
        Pass[] active = _active;
        for (int i = active.Length - 1; i >= 0; i--)
            if (active[i].HasWork) return active[i];
        return null;
    }

    /// <summary>
    /// A worker: runs chunks of the newest pass with work left until no pass has any, then waits for a new pass (spinning a
    /// while, then blocked). The count of passes is read before the look for work, so a pass published between the two is
    /// not slept through.
    /// </summary>
    private void Work()
    {
        while (true)
        {
            long seen = Interlocked.Read(ref _published);
            Pass? pass = WithWork();
            if (pass is null) WaitForPass(seen);
            // Back here after any chunk once a newer pass is published, so the newest pass gets the workers first.
            else pass.Run(() => Interlocked.Read(ref _published) != seen);
        }
    }

    /// <summary>Returns once a pass beyond the <paramref name="seen"/>th is published: spinning for <see cref="SpinAfterPass"/>, then blocked on the gate.</summary>
    private void WaitForPass(long seen)
    {
        long until = Stopwatch.GetTimestamp() + _spinTicks;
        while (Interlocked.Read(ref _published) == seen && Stopwatch.GetTimestamp() < until) Thread.SpinWait(20);
        lock (_gate)
            while (Interlocked.Read(ref _published) == seen) Monitor.Wait(_gate);
    }

    /// <summary>One call's chunks: claimed from one counter by whoever runs it, done when every chunk has run.</summary>
    private sealed class Pass(Action<long> body, long chunks, long spinTicks)
    {
        private readonly object _gate = new();
        private long _next, _done;
        private ExceptionDispatchInfo? _failure;

        /// <summary>The first exception a chunk threw, with its stack trace.</summary>
        public ExceptionDispatchInfo? Failure => Volatile.Read(ref _failure);

        /// <summary>Whether some chunk is still unclaimed.</summary>
        public bool HasWork => Interlocked.Read(ref _next) < chunks;

        /// <summary>Runs unclaimed chunks until none is left, or (a worker's) until <paramref name="leave"/> says so after a chunk.</summary>
        public void Run(Func<bool>? leave = null)
        {
            for (long c = Interlocked.Increment(ref _next) - 1; c < chunks; c = Interlocked.Increment(ref _next) - 1)
            {
                try
                {
                    body(c);
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref _failure, ExceptionDispatchInfo.Capture(e), null);
                }
                if (Interlocked.Increment(ref _done) == chunks)
                    lock (_gate) Monitor.PulseAll(_gate);
                if (leave is not null && leave()) return;
            }
        }

        /// <summary>
        /// Returns when every chunk has run: the last ones may still be on workers when the caller runs out of chunks, for
        /// at most about a chunk's time, so it spins that long before it blocks.
        /// </summary>
        public void WaitAll()
        {
            long until = Stopwatch.GetTimestamp() + spinTicks;
            while (Interlocked.Read(ref _done) < chunks && Stopwatch.GetTimestamp() < until) Thread.SpinWait(20);
            if (Interlocked.Read(ref _done) < chunks)
                lock (_gate)
                    while (Interlocked.Read(ref _done) < chunks) Monitor.Wait(_gate);
        }
    }
}

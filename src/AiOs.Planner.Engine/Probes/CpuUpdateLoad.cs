using AiOs.Planner.Engine.Native;
using AiOs.Planner.Optim;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Probes;

/// <summary>
/// The engine's CPU update kept running on a thread of its own over a synthetic optimizer state: CPU Adam's bf16-gradient
/// pass (the engine's path) on the threads the overlapped and delayed schedules give it, back to back until disposed. The
/// in-step floor probe times layer passes beside it, as those schedules run the next passes beside the real update: every
/// pass then runs beside the update from start to end, whatever the model's size (the delayed schedule's own update, at the
/// probe's small size, overlapped few passes and only some of each, and its ratios did not reproduce between VMs).
/// </summary>
/// <remarks>
/// The state is larger than any last-level cache, so each pass streams memory as the real update does. With
/// <see cref="HostLoadKind.GradientSums"/> the load is instead the engine's later-micro-batch gradient add
/// (<see cref="GradientSums.AddBf16"/>: bf16 gradients widened into fp32 sums, split evenly over the load's threads as every
/// pass's set), one unit-sized call after another, and <see cref="ParametersUpdated"/> counts the elements added.
/// </remarks>
internal sealed unsafe class CpuUpdateLoad : IDisposable
{
    private readonly HostLoadKind _kind;
    private readonly int _elements;
    /// <summary>Master weights, m, v (fp32), gradients and the bf16 copy: mapped and advised to huge pages as the engine's state (<see cref="HostBuffer"/>), not managed arrays.</summary>
    private readonly HostBuffer _master, _m, _v, _gradients, _bf16;
    private readonly int _threads;
    private readonly Thread _thread;
    private readonly ManualResetEventSlim _started = new();
    private volatile bool _stop;
    private long _updates;
    private long _parameters;
    private Exception? _failure;

    /// <summary>Bytes of state per parameter: fp32 master, m and v, bf16 gradient and bf16 copy.</summary>
    private const long StateBytesPerElement = 16;

    /// <summary>
    /// Parameters whose state spans sixteen times <paramref name="lastLevelCache"/>, as a real update's state does (a state
    /// a few times the cache is still partly served from it: calibration's 1 GiB Adam state ran 1.24× the engine's in-step
    /// rate on a 300 MiB-L3 VM), at least 64 M and held to a quarter of <paramref name="available"/> memory.
    /// </summary>
    public static int ElementsFor(Bytes? lastLevelCache, Bytes? available) =>
        (int)Measurement.HostMemory.ElementsPastCache(lastLevelCache, available, StateBytesPerElement, cacheMultiple: 16, floor: 1L << 26, max: 1L << 30);

    /// <summary>
    /// Starts the load over <paramref name="elements"/> parameters on <paramref name="threads"/> threads; returns once its first
    /// update has finished (its pages touched, so what runs beside it meets the load at its pace).
    /// </summary>
    /// <exception cref="InvalidOperationException">The first update failed (its exception is the inner one).</exception>
    public CpuUpdateLoad(int elements, int threads, HostLoadKind kind = HostLoadKind.AdamUpdate)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(elements, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        _kind = kind;
        _threads = threads;
        _elements = elements;
        var buffers = HostBuffer.AllocateMany([elements, elements, elements], TorchSharp.torch.ScalarType.Float32, pin: false);
        (_master, _m, _v) = (buffers[0], buffers[1], buffers[2]);
        try
        {
            var halves = HostBuffer.AllocateMany([elements, elements], TorchSharp.torch.ScalarType.BFloat16, pin: false);
            (_gradients, _bf16) = (halves[0], halves[1]);
        }
        catch
        {
            // Callers may carry on without the load (an optional figure): the state mapped so far goes now, not at finalisation.
            foreach (var b in buffers) b.Dispose();
            throw;
        }
        // Values of a real state's size: no zeros or denormals to make a pass cheaper than the engine's.
        Master.Fill(0.02f);
        Gradients.Fill(0x3A83); // bf16 1.0e-3
        _thread = new Thread(Run) { IsBackground = true, Name = kind == HostLoadKind.GradientSums ? "aios-gradient-sum-load" : "aios-cpu-update-load" };
        _thread.Start();
        _started.Wait();
        if (Failure is { } e)
        {
            _thread.Join();
            _started.Dispose();
            foreach (var b in new[] { _master, _m, _v, _gradients, _bf16 }) b.Dispose();
            throw new InvalidOperationException($"The CPU update load failed at its first update: {e.Message}", e);
        }
    }

    private Span<float> Master => new((void*)_master.Address, _elements);
    private Span<ushort> Gradients => new((void*)_gradients.Address, _elements);

    /// <summary>Threads the update runs on, its own included.</summary>
    public int Threads => _threads;

    /// <summary>Updates completed so far.</summary>
    public long Updates => Interlocked.Read(ref _updates);

    /// <summary>Parameters updated so far, counted per sub-group (<see cref="SubGroup"/>), so a rate over a short window is exact to one sub-group.</summary>
    public long ParametersUpdated => Interlocked.Read(ref _parameters);

    /// <summary>Parameters per update call: the engine updates one sub-group (at most a unit) per call.</summary>
    public const int SubGroup = 32 << 20;

    /// <summary>Why the load stopped before it was disposed; null while it runs or after a clean stop.</summary>
    public Exception? Failure => Volatile.Read(ref _failure);

    private void Run()
    {
        var hp = new AdamHyperParameters();
        // The sums' passes name no thread count: they run on every pass's set, as the engine's do beside the GPU's work.
        using IDisposable? everyPass = _kind == HostLoadKind.GradientSums ? CpuWorkers.UseForEveryPass(_threads) : null;
        try
        {
            for (int step = 1; !_stop; step = step % 1000 + 1)
            {
                for (int at = 0; at < _elements && !_stop; at += SubGroup)
                {
                    int n = Math.Min(SubGroup, _elements - at);
                    if (_kind == HostLoadKind.GradientSums)
                        GradientSums.AddBf16(Master.Slice(at, n), Gradients.Slice(at, n));
                    else
                        CpuAdam.StepBf16Gradients(Master.Slice(at, n), Gradients.Slice(at, n), new Span<float>((float*)_m.Address + at, n),
                            new Span<float>((float*)_v.Address + at, n), new Span<ushort>((ushort*)_bf16.Address + at, n), step, hp, _threads);
                    Interlocked.Add(ref _parameters, n);
                }
                Interlocked.Increment(ref _updates);
                _started.Set();
            }
        }
        catch (Exception e)
        {
            Volatile.Write(ref _failure, e);
        }
        finally
        {
            _started.Set();
        }
    }

    /// <summary>Stops the load after its current update (a failure stays in <see cref="Failure"/>).</summary>
    public void Dispose()
    {
        _stop = true;
        _thread.Join();
        _started.Dispose();
        foreach (var b in new[] { _master, _m, _v, _gradients, _bf16 }) b.Dispose();
    }
}

/// <summary>What a <see cref="CpuUpdateLoad"/> keeps running.</summary>
internal enum HostLoadKind
{
    /// <summary>CPU Adam on bf16 gradients, the bf16 copy written (the engine's update).</summary>
    AdamUpdate,
    /// <summary>bf16 gradients added into fp32 sums (the engine's later micro-batches' <c>GradAccumulate</c>).</summary>
    GradientSums,
}

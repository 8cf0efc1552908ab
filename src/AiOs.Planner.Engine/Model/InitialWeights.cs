using AiOs.Planner.Engine.Checkpoints;
using AiOs.Planner.Models;

namespace AiOs.Planner.Engine.Model;

/// <summary>
/// The fp32 starting values of every unit, shared by every executor: seeded from (seed, unit), or read from
/// pretrained weights (<see cref="PretrainedWeights"/>, <c>--init-from</c>). Units are produced one at a time, so
/// starting a large model never holds more than one unit's values besides what the executor keeps.
/// </summary>
public sealed class InitialWeights : IDisposable
{
    private readonly ModelSpec _spec;
    private readonly long _seed;
    private readonly PretrainedWeights? _pretrained;

    private InitialWeights(ModelSpec spec, long seed, PretrainedWeights? pretrained)
    {
        _spec = spec;
        _seed = seed;
        _pretrained = pretrained;
    }

    /// <summary>The pretrained weights the units come from, or null when they are seeded.</summary>
    public PretrainedWeights? Pretrained => _pretrained;

    /// <summary>
    /// Starting values for <paramref name="spec"/>: read from <paramref name="initFrom"/> when given (opened and checked
    /// now, so a mismatch is reported before anything is allocated), otherwise seeded by <paramref name="seed"/>.
    /// </summary>
    /// <exception cref="FileNotFoundException">The weights do not exist.</exception>
    /// <exception cref="InvalidDataException">The weights do not fit <paramref name="spec"/>.</exception>
    public static InitialWeights Open(ModelSpec spec, long seed, string? initFrom) =>
        new(spec, seed, initFrom is null ? null : PretrainedWeights.Open(initFrom, spec));

    /// <summary>The fp32 values of unit <paramref name="unit"/> (layers, then the outer block) in its <see cref="ParameterLayout"/>.</summary>
    public float[] Unit(int unit)
    {
        if (_pretrained is not null) return _pretrained.ReadUnit(unit);
        ParameterLayout layout = unit == _spec.NumLayers ? ParameterLayout.ForOuter(_spec) : ParameterLayout.ForLayer(_spec);
        var values = new float[layout.Elements];
        layout.Initialise(values, _spec, _seed, unit);
        return values;
    }

    /// <summary>
    /// The fp32 values of units 0 … <paramref name="count"/> − 1 in order, each produced on a worker thread ahead of its
    /// turn: up to one unit per core is being made while the caller stores the previous ones, bounded to about
    /// <paramref name="lookAheadBytes"/> of values in flight (at least two units). Every unit has its own seed, so the
    /// values are the same whatever the thread count.
    /// </summary>
    public IEnumerable<float[]> InOrder(int count, long lookAheadBytes = 2L << 30)
    {
        int window = Window(_spec, lookAheadBytes, Environment.ProcessorCount);
        var pending = new Queue<Task<float[]>>();
        int next = 0;
        try
        {
            for (int u = 0; u < count; u++)
            {
                while (next < count && pending.Count < window)
                {
                    int unit = next++;
                    pending.Enqueue(Task.Run(() => Unit(unit)));
                }
                yield return pending.Dequeue().GetAwaiter().GetResult();
            }
        }
        finally
        {
            // A caller that stops early (an error while storing) still waits for the units in flight, so none outlives the files they read.
            foreach (Task<float[]> t in pending) t.ContinueWith(_ => { }).Wait();
        }
    }

    /// <summary>
    /// Units <see cref="InOrder"/> makes at once for <paramref name="spec"/>: about <paramref name="lookAheadBytes"/> of the
    /// largest unit's fp32 values, at least two, at most one per core (<paramref name="cores"/>). Core's
    /// <c>EngineMemory.InitialWindow</c> prices the same bound.
    /// </summary>
    public static int Window(ModelSpec spec, long lookAheadBytes, int cores)
    {
        long largest = Math.Max(ParameterLayout.ForLayer(spec).Elements, ParameterLayout.ForOuter(spec).Elements) * sizeof(float);
        return (int)Math.Clamp(lookAheadBytes / Math.Max(1, largest), 2, Math.Max(2, cores));
    }

    /// <summary>
    /// As <see cref="InOrder"/>, but each array is lent: valid until the enumerator moves on, then reused for a later
    /// unit. Layers share one size, so at most <see cref="Window"/> layer arrays and one outer-block array are ever
    /// allocated, whatever the model's depth: the host memory of start-up is that bound, not whatever the garbage
    /// collector has not yet freed of one new array per unit. Seeded values only overwrite every element
    /// (<see cref="ParameterLayout.Initialise(Span{float}, ModelSpec, long, int)"/>), so they equal <see cref="Unit"/>'s bit for bit.
    /// Pretrained units are read whole, one array each, as in <see cref="InOrder"/>.
    /// </summary>
    public IEnumerable<float[]> InOrderReusing(int count, long lookAheadBytes = 2L << 30)
    {
        int window = Window(_spec, lookAheadBytes, Environment.ProcessorCount);
        var free = new System.Collections.Concurrent.ConcurrentBag<float[]>();
        long layerElements = ParameterLayout.ForLayer(_spec).Elements;
        float[] Make(int unit)
        {
            if (_pretrained is not null) return _pretrained.ReadUnit(unit);
            ParameterLayout layout = unit == _spec.NumLayers ? ParameterLayout.ForOuter(_spec) : ParameterLayout.ForLayer(_spec);
            // Only layer arrays go round (the outer block comes once); a free one is taken, else a new one while under the window.
            float[] values = unit != _spec.NumLayers && free.TryTake(out float[]? reused) ? reused : new float[layout.Elements];
            layout.Initialise(values, _spec, _seed, unit);
            return values;
        }
        var pending = new Queue<Task<float[]>>();
        int next = 0;
        try
        {
            for (int u = 0; u < count; u++)
            {
                while (next < count && pending.Count < window)
                {
                    int unit = next++;
                    pending.Enqueue(Task.Run(() => Make(unit)));
                }
                float[] values = pending.Dequeue().GetAwaiter().GetResult();
                yield return values;
                // The caller is done with it: a later layer is made in it (the window's tasks started so far hold their own).
                if (_pretrained is null && values.Length == layerElements && u != _spec.NumLayers) free.Add(values);
            }
        }
        finally
        {
            foreach (Task<float[]> t in pending) t.ContinueWith(_ => { }).Wait();
        }
    }

    /// <summary>Where <see cref="StoreAll"/> hands one unit's values (valid only during the call).</summary>
    public delegate void UnitSink(int unit, ReadOnlySpan<float> values);

    /// <summary>fp32 memory of exactly one unit's length that <see cref="StoreAll"/> may make that unit's values in (and overwrite).</summary>
    public delegate Span<float> UnitScratch(int unit);

    /// <summary>
    /// Makes the values of units 0 … <paramref name="count"/> − 1 and hands each to <paramref name="store"/> on the worker
    /// that made it, units in parallel and in no set order (<paramref name="store"/> must take different units at once).
    /// Seeded values are made in <paramref name="scratch"/> when given (memory the caller already holds, such as the
    /// unit's gradient accumulator before the first step: nothing is allocated, every core works), otherwise in one reused
    /// array per worker, workers bounded so their arrays stay within about <paramref name="lookAheadBytes"/> (at least one;
    /// the outer block, made once, gets its own). Every unit has its own seed, so the values are the same whatever the
    /// thread count. Pretrained units are read whole, one array each (<see cref="PretrainedWeights.ReadUnit"/>).
    /// </summary>
    public void StoreAll(int count, UnitSink store, UnitScratch? scratch = null, long lookAheadBytes = 2L << 30, int? maxWorkers = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        long layerBytes = ParameterLayout.ForLayer(_spec).Elements * sizeof(float);
        int cores = maxWorkers ?? Environment.ProcessorCount;
        int workers = scratch is not null && _pretrained is null ? cores : (int)Math.Clamp(lookAheadBytes / Math.Max(1, layerBytes), 1, cores);
        try
        {
            // Worker arrays are lent from one pool, not kept per task: Parallel.For retires its tasks and starts new ones (with
            // fresh task-local state) every few hundred milliseconds, so arrays kept per task were made again and again and the
            // managed heap held them until a full collection (a start-up peak set by the collector's timing, not by the workers).
            var pool = new System.Collections.Concurrent.ConcurrentBag<float[]>();
            Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, workers) }, unit =>
            {
                if (_pretrained is not null)
                {
                    store(unit, _pretrained.ReadUnit(unit));
                    return;
                }
                ParameterLayout layout = unit == _spec.NumLayers ? ParameterLayout.ForOuter(_spec) : ParameterLayout.ForLayer(_spec);
                if (scratch is not null)
                {
                    Span<float> into = scratch(unit);
                    layout.Initialise(into, _spec, _seed, unit);
                    store(unit, into);
                    return;
                }
                // Layers share one size and their arrays go back to the pool; the outer block's is not kept (it may be far
                // larger, and comes once).
                bool outer = unit == _spec.NumLayers;
                float[] values = outer || !pool.TryTake(out float[]? lent) ? New(layout.Elements) : lent;
                layout.Initialise(values, _spec, _seed, unit);
                store(unit, values);
                if (!outer) pool.Add(values);
            });
        }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0)
        {
            // The first failure as itself (a full disk, a bad file), not wrapped, so callers see the same error as before.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerExceptions[0]);
        }
    }

    /// <summary>Worker arrays <see cref="StoreAll"/> has made (the outer block's included): what start-up holds on the managed heap.</summary>
    internal int WorkerArraysMade => _arraysMade;

    private int _arraysMade;

    private float[] New(long elements)
    {
        Interlocked.Increment(ref _arraysMade);
        return new float[elements];
    }

    /// <summary>One seeded fp32 array per unit (layers, then the outer block).</summary>
    public static float[][] Create(ModelSpec spec, long seed)
    {
        using InitialWeights weights = Open(spec, seed, null);
        return Enumerable.Range(0, spec.NumLayers + 1).Select(weights.Unit).ToArray();
    }

    /// <summary>Unmaps the pretrained files, if any.</summary>
    public void Dispose() => _pretrained?.Dispose();
}

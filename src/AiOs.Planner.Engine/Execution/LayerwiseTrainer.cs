using System.Diagnostics;
using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Optim;
using AiOs.Planner.Engine.Storage;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Execution;

/// <summary>
/// Trains a model one unit at a time with ZeRO-Infinity-style offload. Forward keeps only each layer's
/// input; backward walks the layers in reverse, fetches a layer again, recomputes it with autograd on
/// and back-propagates the incoming gradient, so a layer's parameters are on the device only while it
/// runs. Gradients leave for fp32 CPU accumulators as each unit finishes. The optimizer (fp32 master
/// weights and moments in CPU RAM or NVMe) runs after backward (DeepSpeed schedule) or updates each
/// unit on a worker thread as soon as its last gradient is in (overlapped schedule).
/// </summary>
/// <remarks>
/// Gradient clipping: the DeepSpeed schedule supports global-norm and per-unit clipping; the
/// overlapped schedule supports per-unit clipping or none (a global norm is not known until backward ends).
/// The outer block (embeddings, final norm, head) is used at both ends of a micro-batch and stays on the
/// device for the whole micro-batch.
/// </remarks>
public sealed partial class LayerwiseTrainer : ITrainer
{
    private readonly ModelSpec _spec;
    private readonly TrainingSettings _settings;
    private readonly EngineOptions _options;
    private readonly Device _device;
    private readonly SwapDirectory? _swapDirectory;
    private readonly ISwapStore? _store;
    private readonly ParameterSwapper _params;
    private readonly OptimizerStates _optim;
    /// <summary>Where the passes accumulate gradients (under the delayed schedule it alternates with <see cref="_spareGrads"/> by step).</summary>
    private GradientStore _grads;
    private readonly float[] _unitScale;
    /// <summary>On a GPU: the streams that copy parameters up and gradients down while compute runs.</summary>
    private readonly CopyStream? _copies;
    /// <summary>With copy streams and accumulation into CPU RAM: the pinned buffers later micro-batches' gradients cross into, shared by the stores.</summary>
    private readonly GradientStaging? _gradientStaging;
    /// <summary>The CPU update's thread count made every pass's (<see cref="AiOs.Planner.Optim.CpuWorkers.UseForEveryPass"/>) while the trainer lives; null when the update takes every core.</summary>
    private readonly IDisposable? _everyPass;
    /// <summary>fp16 only: the dynamic loss scale.</summary>
    private readonly LossScaler? _scaler;
    /// <summary>The other ranks of a data-parallel group; null for one process.</summary>
    private readonly Collectives.ICollectives? _ranks;
    private int _step;
    /// <summary>The step program it executes: every read, upload, compute, download, write and update, in order, with their dependencies.</summary>
    private readonly StepProgram _program;
    private readonly ProgramExecutor _executor;
    private readonly Dictionary<OpKind, Action<Operation>> _handlers;
    /// <summary>With copy streams: the program's dependencies as CUDA stream order (null on the CPU, or with <see cref="EngineOptions.CopyStream"/> off).</summary>
    private readonly StreamOrder? _streamOrder;
    /// <summary>The program's backward part and its optimizer part (the DeepSpeed schedule decides between them whether to update at all).</summary>
    private readonly Operation[] _passOps, _optimizerOps;
    /// <summary>Outside fp16: what was not finite in the step in progress (set by the compute thread or an overlapped update); null while sound.</summary>
    private string? _nonFinite;

    /// <summary>Builds the tiers for <paramref name="settings"/> and fills them with the initial weights (seeded, or <see cref="EngineOptions.InitFrom"/>).</summary>
    /// <param name="spec">The model.</param>
    /// <param name="settings">Placement, buffers, batch and schedule.</param>
    /// <param name="options">Optimizer, clipping, seed, run id, device.</param>
    /// <param name="clock">Clock of the span trace (tests pass a manual one).</param>
    /// <param name="optimizer">The sub-group update (default: the one <see cref="EngineOptions.Optimizer"/> names).</param>
    /// <param name="swapStore">Makes the store for the locked swap folder (default: <see cref="DirectSwapStore"/>, or <see cref="FileSwapStore"/> without <see cref="EngineOptions.DirectIo"/>).</param>
    /// <param name="ranks">The collectives of a data-parallel group (null or one rank: this process alone); see <see cref="DataParallel"/>.</param>
    public LayerwiseTrainer(ModelSpec spec, TrainingSettings settings, EngineOptions options, TimeProvider? clock = null, IOptimizerStep? optimizer = null,
        Func<SwapDirectory, ISwapStore>? swapStore = null, Collectives.ICollectives? ranks = null)
    {
        EngineSettings.Check(spec, settings, options);
        _ranks = DataParallel.Check(ranks, settings, options.Clipping);
        if (settings.Schedule == StepSchedule.Delayed && _ranks is not null)
            throw new ArgumentException($"--schedule delayed is not supported with {_ranks.WorldSize} ranks yet: the deferred update's write-back is per process; use --schedule overlapped or one GPU.", nameof(settings));
        // Pretrained weights are checked before the swap folder and the tiers are set up.
        using InitialWeights initial = InitialWeights.Open(spec, options.Seed, options.InitFrom);
        Native.TorchRuntime.EnsureReady(Native.TorchRuntime.DeviceTypeOf(options.Device));
        _startup.Mark("torch runtime");
        _spec = spec;
        _settings = settings;
        _options = options;
        _device = new Device(options.Device);
        Trace = new SpanTrace(clock ?? TimeProvider.System, hasGpu: _device.type == TorchSharp.DeviceType.CUDA);
        // Compute spans timed by device events, as the resident trainer's: host-timed, a unit's forward measured the host's
        // enqueue and the loss's synchronisation absorbed the queue (the head's span was 97 ms of gpt2-xl's 123 ms forward
        // on the H100, 2026-12-05). AIOS_SYNC_SPANS=1 keeps host timing. Copies on their streams stay host-timed.
        if (_device.type == TorchSharp.DeviceType.CUDA && Environment.GetEnvironmentVariable("AIOS_SYNC_SPANS") != "1")
            Trace.DeviceClock = new CudaSpanClock();
        DeviceMemory = Metrics.DeviceMemory.Watch(_device, options.GpuMemoryLimit);
        int units = spec.NumLayers + 1;
        if (settings.UsesNvme)
        {
            _swapDirectory = SwapDirectory.Acquire(settings.NvmePath!, options.RunId, options.KeepSwapFiles);
            _store = swapStore is not null ? swapStore(_swapDirectory)
                : options.DirectIo ? new DirectSwapStore(_swapDirectory, settings.Aio, options.SwapChecksums)
                : new FileSwapStore(_swapDirectory, options.SwapChecksums);
        }
        try
        {
            // With several ranks, copies stay on the default stream, where the collectives are ordered with compute.
            _copies = _device.type == TorchSharp.DeviceType.CUDA && options.CopyStream && _ranks is null ? new CopyStream() : null;
            _params = new ParameterSwapper(spec, EngineSettings.Tier(settings.ParamOffload), EngineSettings.DType(settings.Precision), _device,
                _store, Io, Trace, _copies, _ranks);
            // The host keeps, per unit, what this rank updates: the whole unit, or its shard with several ranks.
            long[] elements = Enumerable.Range(0, units).Select(_params.HostElements).ToArray();
            // Split masters: the parameters hold the high halves (ties away from zero), the swapped state the remainders.
            bool split = settings.MasterWeights == AiOs.Planner.Optim.MasterWeights.Split;
            if (split && _ranks is not null) throw new ArgumentException("--master-weights split is not supported with several ranks yet: use --master-weights fp32.", nameof(settings));
            _params.RoundsTiesAway = split;
            int? updateThreads = EngineSettings.CpuUpdateThreads(settings, _device.type == TorchSharp.DeviceType.CUDA);
            // The update's set is every pass's set (sums, norms, copies): one set of threads, never two taking turns on the cores.
            if (updateThreads is { } t) _everyPass = AiOs.Planner.Optim.CpuWorkers.UseForEveryPass(t);
            _optim = new OptimizerStates(elements, EngineSettings.Tier(settings.OptimizerOffload), settings.SubGroupSize, optimizer ?? EngineSettings.Optimizer(options, updateThreads), _store, Io, Trace,
                EightBitMoments.For(spec, settings, options, _ranks?.WorldSize ?? 1, updateThreads), split ? _params : null);
            _scaler = settings.Precision == Precision.Fp16 ? new LossScaler(options.InitialLossScale, hysteresis: options.LossScaleHysteresis) : null;
            // Clipping needs the norms, fp16 needs them to see an overflow, and every precision needs them to refuse a
            // non-finite gradient before it reaches the weights (one pass over each unit's gradient per step).
            const bool norms = true;
            _program = EngineProgram.For(spec, settings, _ranks?.WorldSize ?? 1, options.StagedHighHalves);
            // One process with copy streams: later micro-batches' downloads take the program's pinned staging buffers in turn.
            bool addsApart = _ranks is null;
            int stagingBuffers = _program.Shape.GradientStagingBuffers;
            _gradientStaging = _copies is not null && addsApart && settings.GradAccumulation > 1
                && EngineSettings.Tier(settings.EffectiveGradientOffload) != StorageTier.Nvme && !AiOs.Planner.Memory.EngineMemory.HostGradientsInBf16(settings)
                ? new GradientStaging(_copies, elements.Max(), stagingBuffers) : null;
            _grads = EngineSettings.Tier(settings.EffectiveGradientOffload) == StorageTier.Nvme
                ? new NvmeGradientStore(elements, _store!, Io, Trace, norms)
                : new CpuGradientStore(elements, Trace, norms, pinned: _device.type == TorchSharp.DeviceType.CUDA, copies: _copies, bf16: AiOs.Planner.Memory.EngineMemory.HostGradientsInBf16(settings),
                    oneMicroBatch: settings.GradAccumulation == 1, addsApart: addsApart, staging: _gradientStaging, stagingBuffers: stagingBuffers);
            _updateGrads = _grads;
            if (settings.Schedule == StepSchedule.Delayed)
            {
                // Two steps' gradients are live at once: the pending update's and the next step's (EngineSettings.Check keeps them in RAM).
                _spareGrads = new CpuGradientStore(elements, Trace, norms, pinned: _device.type == TorchSharp.DeviceType.CUDA, copies: _copies, bf16: AiOs.Planner.Memory.EngineMemory.HostGradientsInBf16(settings),
                    oneMicroBatch: settings.GradAccumulation == 1, addsApart: addsApart, staging: _gradientStaging, stagingBuffers: stagingBuffers);
                _updateExecutor = new ProgramExecutor(Trace);
            }
            _offloadsCheckpoints = _program.Ops.Any(o => o.Kind == OpKind.ActivationOffload);
            _params.Prepare(_program);
            _optim.Prepare(_program);
            _executor = new ProgramExecutor(Trace);
            // With copy streams, handlers on the device's resources only queue work; the program's dependencies become stream order.
            _streamOrder = _copies is null ? null : new StreamOrder(_program, _copies);
            _handlers = _streamOrder?.Wrap(Handlers()) ?? Handlers();
            _passOps = _program.Ops.Where(o => o.Phase != StepPhase.Optimizer).ToArray();
            _optimizerOps = _program.Ops.Where(o => o.Phase == StepPhase.Optimizer).ToArray();
            _unitScale = new float[units];
            _startup.Mark("tiers (swap folder, slots, pinned pools, state buffers)");
            // Units are made on every core straight into their tiers: seeded values in the unit's gradient accumulator (RAM
            // the store already holds, overwritten by the first micro-batch), so start-up allocates nothing per unit. Moments in
            // RAM are written (zeros read from pages never faulted in) too, so their pages are faulted in now, not in the first step.
            using Native.HostBuffer? zeros = EngineSettings.Tier(settings.OptimizerOffload) == StorageTier.Nvme ? null
                : Native.HostBuffer.ReadOnlyZeros(elements.Max(), ScalarType.Float32);
            // With several ranks the store holds shards, not whole units: the weights are made in worker arrays.
            InitialWeights.UnitScratch? scratch = _grads.Scratch(0).IsEmpty || _ranks is not null ? null : _grads.Scratch;
            initial.StoreAll(units, (u, values) =>
            {
                ReadOnlySpan<float> own = _ranks is null ? values : DataParallel.ShardOf(values, _ranks);
                if (zeros is null) _optim.Initialise(u, own);
                else
                {
                    ReadOnlySpan<float> none = zeros.Floats(own.Length);
                    _optim.SetState(u, own, none, none);
                }
                _params.StoreUnit(u, values);
            }, scratch);
            _startup.Mark("initial weights into their tiers");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Spans of everything the engine did, per resource.</summary>
    public SpanTrace Trace { get; }

    private readonly Records.StartupPhaseClock _startup = new(Metrics.ProcessMemory.ResidentOrNull);

    /// <inheritdoc/>
    public IReadOnlyList<Records.StartupPhase> StartupPhases => _startup.Phases;

    /// <summary>Bytes moved per tier.</summary>
    public IoCounters Io { get; } = new();

    /// <inheritdoc/>
    public DeviceMemory? DeviceMemory { get; }

    /// <inheritdoc/>
    public string Executor => $"layer-by-layer offload on {_device}, CPU AdamW ({_options.Optimizer})";

    /// <summary>Where the swap files are, when NVMe is used.</summary>
    public string? SwapPath => _swapDirectory?.Path;

    /// <summary>The fp32 master weights of <paramref name="unit"/> now (layers, then the outer block); with several ranks every rank must call it (it gathers the shards).</summary>
    public float[] MasterOf(int unit)
    {
        ApplyPendingUpdate();
        return _ranks is null ? _optim.ReadMaster(unit) : DataParallel.Unshard(_optim.ReadMaster(unit), _params.UnitElements(unit), _ranks);
    }

    /// <summary>Optimizer steps completed (including those restored from a checkpoint).</summary>
    public int CompletedSteps => _step;

    /// <summary>Writes a checkpoint of the current state under <paramref name="root"/>; returns its folder. With several ranks every rank writes its shards (a collective).</summary>
    public string SaveCheckpoint(string root)
    {
        // Delayed schedule: the checkpoint holds θ_i, the pending update applied (the next step then computes at θ_i, as after a resume).
        ApplyPendingUpdate();
        Checkpoints.UnitState StateOf(int u)
        {
            var (master, m, v) = _optim.ReadState(u);
            return new Checkpoints.UnitState(master, m, v);
        }
        return _ranks is null
            ? Checkpoints.Checkpoint.Save(root, _spec, _step, _options.Seed, StateOf, _scaler?.State, _settings.OptimizerState)
            : Checkpoints.ShardedCheckpoint.Save(root, _spec, _step, _options.Seed, _ranks, StateOf, _scaler?.State, _settings.OptimizerState);
    }

    /// <summary>
    /// Restores master weights, moments, working parameters and the step count from a checkpoint folder: one process's or a
    /// group's, of any number of ranks (re-sharded to this group's).
    /// </summary>
    public void RestoreCheckpoint(string folder)
    {
        var (manifest, units) = _ranks is null
            ? Checkpoints.Checkpoint.Load(folder, _spec)
            : Checkpoints.ShardedCheckpoint.LoadShard(folder, _spec, _ranks.Rank, _ranks.WorldSize);
        if (manifest.Seed != _options.Seed)
            throw new InvalidDataException($"Checkpoint '{folder}' was made with seed {manifest.Seed}; this run uses {_options.Seed}, so the data order would differ.");
        for (int u = 0; u < units.Length; u++)
        {
            _optim.SetState(u, units[u].Master, units[u].ExpAvg, units[u].ExpAvgSq);
            _params.WriteBack(u, 0, units[u].Master);
        }
        // Device-resident units took only this rank's shard: the others' come from them.
        if (_ranks is not null) _params.GatherResident();
        _step = manifest.Step;
        if (_scaler is not null && manifest.LossScale is { } scale) _scaler.Restore(scale);
    }

    /// <summary>The step program this trainer executes (<see cref="ProgramShape.Engine"/> for its settings).</summary>
    public StepProgram Program => _program;

    /// <summary>Runs one optimizer step over <c>GradAccumulation</c> micro-batches from <paramref name="batchOf"/>: executes the step program.</summary>
    public StepResult Step(Func<int, TokenBatch> batchOf)
    {
        int step = ++_step;
        Trace.CurrentStep = step;
        _nonFinite = null;
        _batchOf = batchOf;
        _stepInProgress = step;
        _stepLoss = 0;
        _stepTokens = 0;
        if (!Delayed)
        {
            _updateGrads = _grads;
            _updateStep = step;
        }
        long startTicks = Stopwatch.GetTimestamp();
        SimDuration traceStart = Trace.Now;
        // Delayed schedule: the previous step's update runs beside this step's passes (its spans count in this step).
        Task? pending = StartPendingUpdate();
        try
        {
            _executor.Run(_passOps, _handlers);
        }
        catch (Exception e)
        {
            // The update must not outlive the failed step (its failure, if any, is secondary to this one).
            try { pending?.Wait(); } catch (AggregateException) { }
            _updatePending = false;
            AbandonMicroBatch();
            // Secondary to the step's own failure, as the update's is.
            try { _grads.DropQueued(); } catch (Exception) { }
            DisposeReduced();
            if (DeviceMemory?.Explain(e) is { } why) throw new InvalidOperationException(why, e);
            throw;
        }
        FinishPendingUpdate(pending);

        bool skipped = false;
        double? usedScale = _scaler?.Scale;
        if (_settings.Schedule == StepSchedule.Overlapped && _ranks is not null)
        {
            // The layers are updated; the ranks agree on the step's loss, tokens and soundness, and (ZeRO-2) the program's
            // gather after the last update shares the updated shards of the device-resident units.
            AgreeAcrossRanks(norms: false);
            _executor.Run(_optimizerOps, _handlers);
        }
        if (_settings.Schedule != StepSchedule.Overlapped)
        {
            _grads.Complete();
            if (_ranks is not null) AgreeAcrossRanks();
            skipped = _scaler is not null && !_scaler.Update(LossScaler.Overflowed(_grads.SumOfSquares.Sum()));
            if (_scaler is null)
                for (int u = 0; u < _unitScale.Length && _nonFinite is null; u++) NoteIfNonFinite(u);
            skipped |= _nonFinite is not null;
            if (!skipped)
            {
                ComputeScales(Enumerable.Range(0, _unitScale.Length));
                if (Delayed) UpdateOrDefer(step);
                else _executor.Run(_optimizerOps, _handlers);
            }
        }
        // The step ends when its queued device work has (copies on their streams included), as it would without copy streams.
        _streamOrder?.SynchronizeAll();
        // Waits for the device to pass the step's device-timed spans and adds them to the trace.
        Trace.SettleDeviceSpans();
        long end = Stopwatch.GetTimestamp();
        SimDuration traceEnd = Trace.Now;
        IReadOnlyList<TraceSpan> spans = Trace.SpansOf(step);
        var phases = PhaseTimes.From(TraceStats.ProgramSpans(spans, _program), traceStart.Nanoseconds, traceEnd.Nanoseconds);
        // The compute thread's waits (the host-sums thread's waits for its copies are no I/O stall).
        var stalled = new SimDuration(spans.Where(s => s.Resource == SpanTrace.StallResource && s.Operation != SpanTrace.CopyWaitName).Sum(s => s.Duration.Nanoseconds));
        return new StepResult(step, _stepLoss, _stepTokens, Duration(Stopwatch.GetElapsedTime(startTicks, end)), phases.Forward, phases.Backward,
            phases.Optimizer, stalled) { LossScale = usedScale, Skipped = skipped, NonFinite = Volatile.Read(ref _nonFinite), LearningRate = skipped ? null : _options.Adam.LearningRateAt(step - (_scaler?.Skipped ?? 0)) };
    }

    /// <summary>Outside fp16, records <paramref name="unit"/>'s gradients as the step's first non-finite value when their Σg² is NaN or infinite.</summary>
    private void NoteIfNonFinite(int unit)
    {
        double squares = _grads.SumOfSquares[unit];
        if (!double.IsFinite(squares))
            Interlocked.CompareExchange(ref _nonFinite, $"the gradients of {(unit == _spec.NumLayers ? "the outer block (embeddings, head)" : $"layer {unit}")} (sum of squares {squares})", null);
    }

    private static SimDuration Duration(TimeSpan t) => new(t.Ticks * 100);

    /// <summary>Sets each unit's gradient multiplier from the clipping rule and the fp16 loss scale.</summary>
    private void ComputeScales(IEnumerable<int> units)
    {
        foreach (int u in units) _unitScale[u] = GradientScales.Of(u, _grads.SumOfSquares, _options.Clipping, _scaler?.Scale ?? 1);
    }

    /// <summary>torch.nn.utils.clip_grad_norm_'s coefficient: min(1, max_norm / (norm + 1e-6)).</summary>
    internal static float ClipScale(double norm, double maxNorm) => (float)Math.Min(1.0, maxNorm / (norm + 1e-6));

    /// <summary>Releases device slots, buffers and (unless kept) the swap folder.</summary>
    public void Dispose()
    {
        _executor?.Dispose();
        _updateExecutor?.Dispose();
        _spareGrads?.Dispose();
        DisposeReduced();
        _params?.Dispose();
        _optim?.Dispose();
        _grads?.Dispose();
        // After the stores: their disposal waits for the copies into it.
        _gradientStaging?.Dispose();
        DisposeCheckpointBuffers();
        _copies?.Dispose();
        _store?.Dispose();
        _swapDirectory?.Dispose();
        DeviceMemory?.Dispose();
        Trace?.DeviceClock?.Dispose();
        _everyPass?.Dispose();
    }
}

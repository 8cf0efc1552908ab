using System.Runtime.InteropServices;
using System.Diagnostics;
using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Optim;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;
using TorchSharp;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Execution;

/// <summary>
/// Trains with nothing offloaded: parameters, gradients, fp32 master weights and both Adam moments all stay
/// on the device, and AdamW runs there (<see cref="IDeviceAdamW"/>: one fused kernel per unit on CUDA). This
/// is the baseline an offloaded run is weighed against, and what a model that fits should use.
/// </summary>
/// <remarks>
/// Each unit's gradients are packed into one flat buffer in the training precision as its backward ends (one
/// concatenation of the gradients autograd made, which replaces the buffer at the step's first micro-batch and is
/// added to it at later ones); with gradient accumulation in bf16 or fp16 the packed gradients are added into fp32
/// accumulators instead, as the offloaded engine accumulates in fp32 (the step program prices these passes as
/// <see cref="Simulation.Program.Operation.SumBytes"/>). Without activation checkpointing every layer
/// keeps its autograd graph from forward to backward (no recomputation); with it, forward keeps only each
/// layer's input and backward recomputes the layer. A step executes the resident step program (<see cref="Program"/>:
/// forward and backward per unit, one device optimizer operation) through <see cref="ProgramExecutor"/>, so each span
/// carries its operation's id and the step's phases are Core's; on a GPU the spans are timed by events in the device's
/// stream (<see cref="CudaSpanClock"/>), so the host queues the next operation's kernels while the device runs this one's
/// and the spans still measure device time; the step ends when the device has passed them.
/// The optimizer runs after backward in either schedule; clipping: global norm or per unit.
/// </remarks>
public sealed partial class DeviceTrainer : ITrainer
{
    private readonly ModelSpec _spec;
    private readonly TrainingSettings _settings;
    private readonly EngineOptions _options;
    private readonly Device _device;
    private readonly GptModel _model;
    private readonly Tensor[] _master, _expAvg, _expAvgSq, _gradients;
    private readonly Tensor[]? _accumulators;
    private readonly IDeviceAdamW? _adam;
    private readonly bool _sync;
    private readonly LossScaler? _scaler;
    /// <summary>How Σg² is taken: in fp64 on the CPU (exact; fp32 and bf16 gradients read where they lie, fp16 through an fp64 copy), fp32 norms on a GPU unless AIOS_GRAD_NORM=fp64.</summary>
    private readonly GradientNormPath _gradNorm;
    /// <summary>The other ranks of a data-parallel group; null for one process.</summary>
    private readonly Collectives.ICollectives? _ranks;
    private int _step;
    private readonly StepProgram _program;
    private readonly ProgramExecutor _executor;
    private readonly Dictionary<OpKind, Action<Operation>> _handlers;

    /// <summary>Allocates everything on the device (after applying <see cref="EngineOptions.GpuMemoryLimit"/>) and loads the initial weights (seeded, or <see cref="EngineOptions.InitFrom"/>).</summary>
    /// <param name="spec">The model.</param>
    /// <param name="settings">Batch, precision and schedule (nothing offloaded).</param>
    /// <param name="options">Optimizer, clipping, seed, device.</param>
    /// <param name="clock">Clock of the span trace (tests pass a manual one).</param>
    /// <param name="ranks">
    /// The collectives of a data-parallel group (null or one rank: this process alone). Every rank keeps the whole model
    /// and its optimizer state, and the gradients are averaged across ranks before the update (replicated data parallelism).
    /// </param>
    public DeviceTrainer(ModelSpec spec, TrainingSettings settings, EngineOptions options, TimeProvider? clock = null, Collectives.ICollectives? ranks = null)
    {
        if (!Trainers.IsResident(settings)) throw new ArgumentException("DeviceTrainer runs only settings that offload nothing; use LayerwiseTrainer.", nameof(settings));
        EngineSettings.Check(spec, settings, options);
        _gradNorm = GradientNorms.PathFor(Native.TorchRuntime.DeviceTypeOf(options.Device), Environment.GetEnvironmentVariable(GradientNorms.Variable));
        _ranks = ranks is { WorldSize: > 1 } ? ranks : null;
        if (_ranks is not null && settings.CudaGraphs)
            throw new ArgumentException($"--cuda-graphs has run on one GPU only, and this run has {_ranks.WorldSize} ranks: drop --cuda-graphs, or train on one GPU.", nameof(settings));
        // Pretrained weights are checked before anything is allocated on the device.
        using InitialWeights initial = InitialWeights.Open(spec, options.Seed, options.InitFrom);
        Native.TorchRuntime.EnsureReady(Native.TorchRuntime.DeviceTypeOf(options.Device));
        _startup.Mark("torch runtime");
        _spec = spec;
        _settings = settings;
        _options = options;
        _device = new Device(options.Device);
        _sync = _device.type == DeviceType.CUDA;
        Trace = new SpanTrace(clock ?? TimeProvider.System, hasGpu: _sync);
        // Device-timed spans let the host run ahead of the device; AIOS_SYNC_SPANS=1 waits after every operation instead (the old way, for comparison).
        if (_sync && Environment.GetEnvironmentVariable("AIOS_SYNC_SPANS") != "1") Trace.DeviceClock = new CudaSpanClock();
        // Its passes never wait for the device inside their spans (the losses are read with the update's norms), so their host
        // time is what queueing them cost (StepMetrics.HostPassMs). The layer-by-layer trainer's passes wait (the loss read at
        // the head, a gradient store's settle), so it keeps none.
        Trace.CountsHostPasses = Trace.DeviceClock is not null;
        DeviceMemory = Metrics.DeviceMemory.Watch(_device, options.GpuMemoryLimit);
        int units = spec.NumLayers + 1;
        _master = new Tensor[units];
        _expAvg = new Tensor[units];
        _expAvgSq = new Tensor[units];
        _gradients = new Tensor[units];
        if (settings.OptimizerState == OptimizerStateFormat.EightBit) _moments8 = new DeviceEightBitMoments[units];
        ScalarType dtype = EngineSettings.DType(settings.Precision);
        _scaler = settings.Precision == Precision.Fp16 ? new LossScaler(options.InitialLossScale, hysteresis: options.LossScaleHysteresis) : null;
        bool accumulateFp32 = settings.GradAccumulation > 1 && dtype != ScalarType.Float32;
        if (accumulateFp32) _accumulators = new Tensor[units];
        try
        {
            _model = new GptModel(spec, dtype, _device);
            DeviceMemory?.Note("the model's parameters");
            _startup.Mark("the model on the device");
            using var _ = no_grad();
            // Lent arrays: start-up holds at most the window's units on the host (EngineMemory's "initial values in flight").
            using IEnumerator<float[]> values = initial.InOrderReusing(units).GetEnumerator();
            for (int u = 0; u < units; u++)
            {
                FlatParameters p = _model.Unit(u);
                long n = p.Layout.Elements;
                _master[u] = dtype == ScalarType.Float32 ? p.Flat : zeros([n], ScalarType.Float32, _device).DetachFromDisposeScope();
                AllocateMoments(u, p.Layout);
                // A layer replayed from CUDA graphs needs no buffer of its own at one micro-batch a step or with fp32 sums
                // (GraphsReplaceLayerBuffers): one made here would only sit in the caching allocator's cache, unused.
                _gradients[u] = (GraphsReplaceLayerBuffers && u < spec.NumLayers ? empty([0], dtype, _device) : zeros([n], dtype, _device)).DetachFromDisposeScope();
                if (_accumulators is not null) _accumulators[u] = zeros([n], ScalarType.Float32, _device).DetachFromDisposeScope();
                values.MoveNext();
                SetMaster(u, values.Current);
                DeviceMemory?.Note($"unit {u}'s initial weights");
            }
            ReleaseStaging();
            DeviceMemory?.Note("master weights, moments and gradient buffers");
            _startup.Mark("master weights, moments, gradient buffers and initial weights");
            // The fused kernel writes a bf16 working copy; fp16 uses the TorchSharp operations. 8-bit moments have their own update.
            if (_moments8 is not null) _adam8 = DeviceAdamW8bit.For(_device, options.Adam);
            else _adam = DeviceAdamW.For(_device, options.Adam, options.FusedDeviceAdam && dtype != ScalarType.Float16);
            _program = ResidentProgram.For(spec, settings, _ranks?.WorldSize ?? 1);
            // The optimizer handler updates every unit: a program with its optimizer split into parts would update them twice.
            if (_program.Ops.Count(o => o.Kind == OpKind.OptimizerStep) != 1)
                throw new InvalidOperationException($"The resident program has {_program.Ops.Count(o => o.Kind == OpKind.OptimizerStep)} optimizer steps; DeviceTrainer runs one over the whole model.");
            _executor = new ProgramExecutor(Trace);
            _handlers = Handlers();
            DeviceMemory?.Sample();
        }
        catch (Exception e)
        {
            Dispose();
            if (DeviceMemory?.Explain(e) is { } why) throw new InvalidOperationException(why, e);
            throw;
        }
    }

    /// <inheritdoc/>
    public SpanTrace Trace { get; }

    /// <summary>Times the constructor's phases, with the resident set at the end of each (issue 13: where the host memory of a resident run grows).</summary>
    private readonly Records.StartupPhaseClock _startup = new(Metrics.ProcessMemory.ResidentOrNull);

    /// <inheritdoc/>
    public IReadOnlyList<Records.StartupPhase> StartupPhases => _startup.Phases;

    /// <inheritdoc/>
    public IoCounters Io { get; } = new();

    /// <inheritdoc/>
    public DeviceMemory? DeviceMemory { get; }

    /// <inheritdoc/>
    public int CompletedSteps => _step;

    /// <summary>Which device AdamW updates the units (<c>fused-cuda</c>, <c>torch-ops</c>, or with 8-bit moments <c>fused-cuda-8bit</c> or <c>blockwise-cpu-8bit</c>).</summary>
    public string OptimizerName => _adam8?.Name ?? _adam!.Name;

    /// <inheritdoc/>
    public string Executor => $"device-resident{(_settings.CudaGraphs ? ", layers replayed from CUDA graphs" : "")}, AdamW {OptimizerName} on {_device}";

    /// <inheritdoc/>
    public float[] MasterOf(int unit) => _master[unit].cpu().data<float>().ToArray();

    /// <inheritdoc/>
    /// <remarks>With several ranks every rank holds the same state: rank 0 writes it, the others wait for it (every rank calls this).</remarks>
    public string SaveCheckpoint(string root)
    {
        string folder = Path.Combine(root, $"step-{_step}");
        if (_ranks is null || _ranks.Rank == 0)
            folder = Checkpoints.Checkpoint.Save(root, _spec, _step, _options.Seed, u =>
            {
                var (m, v) = MomentsOf(u);
                return new Checkpoints.UnitState(MasterOf(u), m, v);
            }, _scaler?.State, _settings.OptimizerState);
        _ranks?.Barrier();
        return folder;
    }

    /// <inheritdoc/>
    public void RestoreCheckpoint(string folder)
    {
        var (manifest, units) = Checkpoints.Checkpoint.Load(folder, _spec);
        if (manifest.Seed != _options.Seed)
            throw new InvalidDataException($"Checkpoint '{folder}' was made with seed {manifest.Seed}; this run uses {_options.Seed}, so the data order would differ.");
        using var _ = no_grad();
        try
        {
            for (int u = 0; u < units.Length; u++)
            {
                SetMaster(u, units[u].Master);
                SetMoments(u, units[u].ExpAvg, units[u].ExpAvgSq);
            }
        }
        finally
        {
            ReleaseStaging();
        }
        _step = manifest.Step;
        if (_scaler is not null && manifest.LossScale is { } scale) _scaler.Restore(scale);
    }

    /// <summary>The step program this trainer executes (<see cref="ResidentProgram"/>: the program the simulator predicts for a resident run).</summary>
    public StepProgram Program => _program;

    /// <inheritdoc/>
    public StepResult Step(Func<int, TokenBatch> batchOf)
    {
        int step = ++_step;
        Trace.CurrentStep = step;
        // A step that failed between its losses and its update left them on the device: free them, not the finalizer.
        _state.Dispose();
        _state = new StepState(step, batchOf) { UsedScale = _scaler?.Scale };
        long start = Stopwatch.GetTimestamp();
        SimDuration traceStart = Trace.Now;
        try
        {
            _executor.Run(_program.Ops, _handlers);
        }
        catch (Exception e) when (DeviceMemory?.Explain(e) is { } why)
        {
            AbandonMicroBatch();
            throw new InvalidOperationException(why, e);
        }
        catch
        {
            AbandonMicroBatch();
            throw;
        }
        // A program without an update (none in this trainer today) still reports its loss.
        _state.ReadLosses(_scaler is not null);
        // The step ends when the device has done its work: settling the device-timed spans waits for it.
        Trace.SettleDeviceSpans();
        long end = Stopwatch.GetTimestamp();
        SimDuration traceEnd = Trace.Now;
        var phases = PhaseTimes.From(TraceStats.ProgramSpans(Trace.SpansOf(step), _program), traceStart.Nanoseconds, traceEnd.Nanoseconds);
        StepState done = _state;
        return new StepResult(step, done.Loss, done.Tokens, Duration(Stopwatch.GetElapsedTime(start, end)), phases.Forward, phases.Backward,
            phases.Optimizer, SimDuration.Zero)
        {
            LossScale = done.UsedScale, Skipped = done.Skipped, NonFinite = done.NonFinite,
            LearningRate = done.Skipped ? null : _options.Adam.LearningRateAt(step - (_scaler?.Skipped ?? 0)),
        };
    }

    /// <summary>
    /// AdamW on every unit where it lives, after the clipping rule's scales; false when fp16 gradients overflowed and the step was
    /// skipped, or (other precisions) when the loss or a unit's gradients were not finite, which <paramref name="nonFinite"/> then names.
    /// </summary>
    private bool Update(int step, ref string? nonFinite)
    {
        Tensor[] gradients = _accumulators ?? _gradients;
        // Σg² is always taken (one reduction per unit): clipping and fp16 need it, and every precision must keep a NaN out of the
        // weights. The step's losses, summed on the device, come back in the same copy: the host waits once, with every
        // reduction already queued behind the backward.
        Tensor? losses = _state.PendingLosses;
        double[] squares = GradientNorms.SumsOfSquares(gradients, _gradNorm, losses, out double lossSum);
        if (losses is not null)
        {
            _state.ApplyLosses(lossSum, _scaler is not null);
            nonFinite ??= _state.NonFinite;
        }
        // Several ranks agree on the loss, the tokens and a non-finite loss once every rank has read its own.
        if (_ranks is not null) AgreeOnTheStep(ref nonFinite);
        if (_scaler is not null && !_scaler.Update(LossScaler.Overflowed(squares.Sum()))) return false;
        if (_scaler is null && nonFinite is null && Array.FindIndex(squares, q => !double.IsFinite(q)) is var bad and >= 0)
            nonFinite = $"the gradients of {(bad == _spec.NumLayers ? "the outer block (embeddings, head)" : $"layer {bad}")} (sum of squares {squares[bad]})";
        if (nonFinite is not null) return false;
        float[] scales = GradientScales.All(squares, gradients.Length, _options.Clipping, _scaler?.Scale ?? 1);
        int adamStep = step - (_scaler?.Skipped ?? 0);
        for (int u = 0; u < gradients.Length; u++)
        {
            using var scope = NewDisposeScope();
            Tensor? working = ReferenceEquals(_master[u], _model.Unit(u).Flat) ? null : _model.Unit(u).Flat;
            if (_adam8 is not null) _adam8.Update(_master[u], gradients[u], _moments8![u], working, adamStep, scales[u]);
            else _adam!.Update(_master[u], gradients[u], _expAvg[u], _expAvgSq[u], working, adamStep, scales[u]);
        }
        DeviceMemory?.Sample();
        return true;
    }

    /// <summary>
    /// ReduceScatter, as the program's handler (several ranks; the model is replicated, so this is plain data parallelism's
    /// all-reduce): the program has one per unit at the accumulation boundary, after the step's whole backward, the
    /// embedding's last; that one averages every unit's step gradient across the ranks at once — a unit's gradient is
    /// summed over micro-batches in place (or into its fp32 accumulator at the micro-batch's end), so it is final only then.
    /// The others have nothing to move (their bytes are moved by it; the program prices each unit's share).
    /// </summary>
    private void ReduceGradients(Operation op)
    {
        if (_ranks is null || op.Unit.Kind != UnitKind.Embedding || op.MicroBatch != _settings.GradAccumulation - 1) return;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        foreach (Tensor g in _accumulators ?? _gradients)
        {
            ScalarType type = Collectives.CollectiveTypes.ReducedIn(g.dtype);
            Tensor reduced = type == g.dtype ? g : g.to(type);
            _ranks.AllReduce(Native.CudaDriver.DataOf(reduced), Native.CudaDriver.DataOf(reduced), reduced.numel(),
                Collectives.CollectiveTypes.Carrier(type), Collectives.ReduceOperation.Mean);
            if (!ReferenceEquals(reduced, g)) g.copy_(reduced);
        }
    }

    /// <summary>Several ranks: the step's loss (mean), tokens (sum) and non-finite loss (any) agreed, so every rank clips, skips and updates alike.</summary>
    private void AgreeOnTheStep(ref string? nonFinite)
    {
        (double loss, long tokens, bool anyNonFinite) = DataParallel.AgreeOnStep(_ranks!, _state.Loss, _state.Tokens, nonFinite is not null);
        (_state.Loss, _state.Tokens) = (loss, tokens);
        if (anyNonFinite) nonFinite ??= "the loss of another rank";
    }

    /// <summary>
    /// The one CPU tensor initial values (and restored moments) pass through on their way to the device: the largest unit's
    /// size, at most <see cref="EngineMemory.StagingSliceElements"/> (a larger unit is copied in slices), made at first use
    /// and released when start-up (or a restore) is done. A new CPU tensor per unit (<c>tensor(values)</c>, as before
    /// 2026-12-06) left one unit's fp32 values resident per unit on a GPU: gpt2-medium's host set grew 48 MiB a layer through
    /// start-up on the H200 (1.1 GiB in all, the resident runs' host RSS planned 0.2–0.7 GiB low), while the planner
    /// counted one of each size.
    /// </summary>
    private Tensor? _staging;

    /// <summary>Tests: the staging tensor's elements for later copies (a restore), so a unit goes through it in several slices.</summary>
    internal long? StagingElements { get; set; }

    /// <summary>Sets unit <paramref name="unit"/>'s master weights and working parameters from fp32 values.</summary>
    private void SetMaster(int unit, float[] values)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        CopyToDevice(values, _master[unit]);
        FlatParameters p = _model.Unit(unit);
        if (!ReferenceEquals(_master[unit], p.Flat)) p.Flat.copy_(_master[unit]);
    }

    /// <summary>Copies fp32 <paramref name="values"/> into the device tensor <paramref name="target"/> through <see cref="_staging"/>, slice by slice.</summary>
    private void CopyToDevice(float[] values, Tensor target)
    {
        if (target.numel() != values.Length)
            throw new ArgumentException($"{values.Length} values for a tensor of {target.numel()} elements.", nameof(values));
        _staging ??= empty([StagingElements ?? EngineMemory.StagingElements(_spec)], ScalarType.Float32).DetachFromDisposeScope();
        long slice = _staging.numel();
        for (long start = 0; start < values.Length; start += slice)
        {
            int length = (int)Math.Min(slice, values.Length - start);
            using Tensor staged = _staging.narrow(0, 0, length);
            values.AsSpan((int)start, length).CopyTo(MemoryMarshal.Cast<byte, float>(staged.bytes));
            using Tensor into = target.narrow(0, start, length);
            into.copy_(staged);
        }
    }

    /// <summary>Frees <see cref="_staging"/> (start-up or a restore is done).</summary>
    private void ReleaseStaging()
    {
        _staging?.Dispose();
        _staging = null;
    }

    private static SimDuration Duration(TimeSpan t) => new(t.Ticks * 100);

    /// <summary>Releases every device buffer and the memory ballast.</summary>
    public void Dispose()
    {
        _executor?.Dispose();
        AbandonMicroBatch();
        _graphs?.Dispose();
        ReleaseStaging();
        foreach (Tensor[]? set in new[] { _expAvg, _expAvgSq, _gradients, _accumulators })
            if (set is not null) foreach (Tensor? t in set) t?.Dispose();
        if (_moments8 is not null) foreach (DeviceEightBitMoments? q in _moments8) q?.Dispose();
        if (_master is not null && _model is not null)
            for (int u = 0; u < _master.Length; u++)
                if (_master[u] is { } m && !ReferenceEquals(m, _model.Unit(u).Flat)) m.Dispose();
        _model?.Dispose();
        DeviceMemory?.Dispose();
        Trace?.DeviceClock?.Dispose();
    }
}

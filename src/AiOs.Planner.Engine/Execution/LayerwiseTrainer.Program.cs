using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;
using TorchSharp;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Execution;

/// <summary>The step program the layer-by-layer engine executes, built once for its settings.</summary>
public static class EngineProgram
{
    /// <summary>
    /// The programs' view of the machine, for this and <see cref="ResidentProgram"/>: one process, no GPU figures (the
    /// engine's shape fixes every choice that depended on them; a resident program has no transfers to price).
    /// </summary>
    internal static readonly HardwareProfile Host = new()
    {
        Name = "engine",
        Cpu = new CpuSpec { Cores = 1, RamGib = new(1), MemoryBandwidthGbps = new(1), AdamParamsPerS = new(1) },
    };

    /// <summary>
    /// The <see cref="ProgramShape.Engine"/> program of one step for <paramref name="settings"/>, as each of
    /// <paramref name="ranks"/> processes runs it (one host): with several, offloaded parameters are partitioned (ZeRO-3: an
    /// all-gather before each use), parameters kept on the device are not (ZeRO-2: one gather after the optimizer), and each
    /// unit's gradients are reduce-scattered after its backward. <paramref name="stagedHighHalves"/> false: without
    /// <see cref="ProgramShape.StagedHighHalves"/> (tests' reference).
    /// </summary>
    public static StepProgram For(ModelSpec spec, TrainingSettings settings, int ranks = 1, bool stagedHighHalves = true) =>
        StepScheduler.Build(spec, Host, DataParallel.ProgramSettings(settings, ranks), false,
            stagedHighHalves ? ProgramShape.Engine : ProgramShape.Engine with { StagedHighHalves = false });
}

/// <summary>The trainer's handlers of the step program's operations.</summary>
public sealed partial class LayerwiseTrainer
{
    /// <summary>What the compute thread carries between the operations of one micro-batch.</summary>
    private sealed class MicroBatchState : IDisposable
    {
        public required TokenBatch Batch { get; init; }
        public required TorchSharp.DisposeScope Scope { get; init; }
        public required DropoutReplay Replay { get; init; }
        public required Tensor Inputs { get; init; }
        public required Tensor Targets { get; init; }
        public required Tensor[] LayerInputs { get; init; }
        public Tensor? Embedded, X, Hidden, Loss, Gradient, RecomputeInput, RecomputeOutput;
        /// <summary>
        /// After layer i's backward its recomputed output, the gradient it was given and its detached input (the leaf that held
        /// <paramref name="inputGradient"/>; the handle given keeps that alive) are dead, and so, kept on the device, is the
        /// checkpoint it was recomputed from. Freed now, not when the micro-batch's scope closes, so backward holds one layer's of
        /// each instead of one per layer (they were kept until the embedding's backward before 2026-12-05). All were made and
        /// read on the compute stream only; a checkpoint place that comes back from CPU RAM is reused, not freed.
        /// </summary>
        public void ReleaseLayerBackward(int i, Tensor inputGradient, bool keepCheckpoint)
        {
            Free(RecomputeOutput);
            Free(Gradient);
            Free(RecomputeInput);
            // Layer 0's input is the embedding's output, which its backward still needs.
            if (!keepCheckpoint && i > 0)
            {
                Free(LayerInputs[i]);
                LayerInputs[i] = null!;
            }
            Gradient = inputGradient;
            RecomputeOutput = RecomputeInput = null;
        }

        /// <summary>After the head's backward: the final hidden states (and their detached copy, whose gradient the handle <see cref="Gradient"/> keeps) are dead.</summary>
        public void ReleaseHeadBackward()
        {
            Free(Hidden);
            Free(X);
            Hidden = X = null;
        }

        /// <summary>Frees <paramref name="t"/> now; taken out of the scope first so the scope's close does not free it again.</summary>
        private static void Free(Tensor? t)
        {
            if (t is null || t.IsInvalid) return;
            t.DetachFromDisposeScope();
            t.Dispose();
        }

        public void Dispose()
        {
            Scope.Dispose();
            Batch.Dispose();
        }
    }

    private MicroBatchState? _micro;
    /// <summary>Tests: called after each layer's backward with the layer and the tensors its micro-batch's dispose scope still holds.</summary>
    internal Action<int, int>? LayerBackwardProbe { get; set; }
    private Func<int, TokenBatch>? _batchOf;
    private int _stepInProgress;
    private double _stepLoss;
    private long _stepTokens;

    private Dictionary<OpKind, Action<Operation>> Handlers()
    {
        var handlers = BaseHandlers();
        AddCheckpointHandlers(handlers);
        return handlers;
    }

    private Dictionary<OpKind, Action<Operation>> BaseHandlers() => new()
    {
        [OpKind.ParamRead] = _params.Read,
        [OpKind.ParamUpload] = _params.Upload,
        [OpKind.AllGather] = _params.Gather,
        [OpKind.ReduceScatter] = ReduceScatter,
        [OpKind.Forward] = Forward,
        [OpKind.Recompute] = Recompute,
        [OpKind.Backward] = Backward,
        [OpKind.GradRead] = op => _grads.ReadBack(_params.UnitOf(op.Unit)),
        [OpKind.GradDownload] = Download,
        [OpKind.GradAccumulate] = op => _grads.AddQueued(_params.UnitOf(op.Unit)),
        [OpKind.GradWrite] = op => _grads.WriteOut(_params.UnitOf(op.Unit)),
        [OpKind.OptimizerRead] = op => _optim.Read(GroupOf(op), op.Slot, _updateGrads, op.HighHalvesSlot),
        [OpKind.OptimizerStep] = Update,
        // The update put the device-resident unit's copy there itself: one process queues it on the device's stream
        // (FlatParameters.CommitWritable), which orders the unit's next use after it; several ranks write their shard with a
        // waiting copy inside the update (ParameterSwapper.WriteShardOnDevice; the program still prices it as this queued
        // copy, an optimistic gap); on a CPU device the update wrote the unit in place. Nothing to do, on its own server.
        [OpKind.ResidentUpload] = _ => { },
        [OpKind.OptimizerWrite] = op => _optim.Write(GroupOf(op), op.Slot),
        // The delayed schedule's program has none (the update leaves the working copies alone); its MasterWriteBack writes them.
        [OpKind.ParamWriteBack] = op =>
        {
            SubGroup g = GroupOf(op);
            _params.WriteBack(g.Unit, g.Offset, _optim.Master(g, op.Slot), traced: false);
        },
        [OpKind.MasterWriteBack] = WriteBackMaster,
    };

    private SubGroup GroupOf(Operation op) =>
        _optim.GroupOf(_params.UnitOf(op.Unit), op.SubGroup ?? throw new InvalidOperationException($"{op} names no sub-group."));

    private nn.Module<Tensor, Tensor> ModuleOf(Operation op) => _params.ModuleIn(_params.UnitOf(op.Unit), op.DeviceSlot);

    private void Forward(Operation op)
    {
        switch (op.Unit.Kind)
        {
            case UnitKind.Embedding:
            {
                // The micro-batch begins: its batch, its dispose scope (closed after the embedding's backward), its dropout masks.
                Trace.CurrentMicroBatch = op.MicroBatch;
                // With several ranks each takes its own micro-batches of the step's global batch.
                int global = DataParallel.GlobalMicroBatch(op.MicroBatch, _settings.GradAccumulation, _ranks);
                TokenBatch batch = _batchOf!(global);
                _stepTokens += batch.Tokens;
                var scope = NewDisposeScope();
                _micro = new MicroBatchState
                {
                    Batch = batch, Scope = scope, Replay = new DropoutReplay(_options.Seed, _stepInProgress, global),
                    Inputs = batch.Inputs.to(_device), Targets = batch.Targets.to(_device), LayerInputs = new Tensor[_spec.NumLayers],
                };
                _micro.Replay.Before(-1, _device);
                if (_offloadsCheckpoints)
                {
                    // Layer 0's input goes to host RAM too: made without autograd, the embedding runs again for its backward.
                    using (no_grad()) _micro.X = ((OuterBlock)ModuleOf(op)).forward(_micro.Inputs);
                }
                else
                {
                    _micro.Embedded = ((OuterBlock)ModuleOf(op)).forward(_micro.Inputs);
                    _micro.X = _micro.Embedded;
                }
                break;
            }
            case UnitKind.Layer:
            {
                int i = op.Unit.Number;
                using (no_grad())
                {
                    _micro!.LayerInputs[i] = _micro.X!;
                    _micro.Replay.Before(i, _device);
                    _micro.X = ModuleOf(op).forward(_micro.X!);
                }
                if (_offloadsCheckpoints)
                {
                    if (i == 0) EnsureCheckpointBuffers(_micro.LayerInputs[0]);
                    // Its copy out (another thread) frees it: the compute thread's dispose scope must not hold it too.
                    _micro.LayerInputs[i].DetachFromDisposeScope();
                }
                DeviceMemory?.Sample();
                break;
            }
            default:
            {
                _micro!.Hidden = _micro.X!.detach().requires_grad_(true);
                _micro.Loss = ((OuterBlock)ModuleOf(op)).Loss(_micro.Hidden, _micro.Targets, _settings.GradAccumulation, _settings.HeadLoss);
                double value = _micro.Loss.item<float>();
                // fp16's loss scaler skips such a step itself; otherwise no update may follow a non-finite loss.
                if (_scaler is null && !double.IsFinite(value)) Interlocked.CompareExchange(ref _nonFinite, $"the loss ({value})", null);
                _stepLoss += value;
                break;
            }
        }
    }

    private void Recompute(Operation op)
    {
        int i = op.Unit.Number;
        _micro!.RecomputeInput = _micro.LayerInputs[i].detach().requires_grad_(true);
        _micro.Replay.Before(i, _device);
        _micro.RecomputeOutput = ModuleOf(op).forward(_micro.RecomputeInput);
    }

    private void Backward(Operation op)
    {
        switch (op.Unit.Kind)
        {
            case UnitKind.Head:
                // fp16: back-propagate the scaled loss so small gradients stay representable; updates divide it out.
                if (_scaler is null) _micro!.Loss!.backward();
                else
                {
                    // The scale as a Scalar this frame holds until the call returns (KeptScalars).
                    using Scalar scale = _scaler.Scale;
                    _micro!.Loss!.mul(scale).backward();
                }
                _micro.Gradient = _micro.Hidden!.grad ?? throw new InvalidOperationException("The loss produced no gradient for the final hidden states.");
                _micro.ReleaseHeadBackward();
                DeviceMemory?.Note($"the head's backward (micro-batch {op.MicroBatch})");
                break;
            case UnitKind.Layer:
            {
                // One autograd call; the layer's parameters keep their gradients for AfterBackward's store (FlatParameters.Backward).
                Tensor input = ((DecoderLayer)ModuleOf(op)).Parameters.Backward(_micro!.RecomputeOutput!, _micro.RecomputeInput!, _micro.Gradient!);
                _micro.ReleaseLayerBackward(op.Unit.Number, input, keepCheckpoint: _offloadsCheckpoints);
                AfterBackward(op);
                LayerBackwardProbe?.Invoke(op.Unit.Number, _micro.Scope.DisposablesCount);
                // Samples the peak; with AIOS_DEVICE_MEMORY_TRACE set, also prints it (where a streamed run's device memory goes).
                DeviceMemory?.Note($"layer {op.Unit.Number}'s backward and its pack (micro-batch {op.MicroBatch})");
                break;
            }
            default:
                (_micro!.Embedded ?? Reembed(op)).backward([_micro.Gradient!]);
                DeviceMemory?.Note($"the embedding's backward (micro-batch {op.MicroBatch})");
                AfterBackward(op);
                DeviceMemory?.Note($"the outer block's pack (micro-batch {op.MicroBatch})");
                _micro.Dispose();
                _micro = null;
                break;
        }
    }

    /// <summary>With checkpoints in host RAM: the embedding run again with autograd, drawing its forward's dropout mask, for its backward.</summary>
    private Tensor Reembed(Operation op)
    {
        _micro!.Replay.Before(-1, _device);
        return _micro.Embedded = ((OuterBlock)ModuleOf(op)).forward(_micro.Inputs);
    }

    /// <summary>Lets the gradient store take <paramref name="op"/>'s unit's gradients while they are last on the compute stream.</summary>
    private void AfterBackward(Operation op)
    {
        // Only the first micro-batch's downloads on a copy stream take their gradients early (never with several ranks: their reduce-scatter takes them).
        if (_copies is null || op.MicroBatch != 0 || _ranks is not null) return;
        int unit = _params.UnitOf(op.Unit);
        _grads.AfterBackward(unit, ParameterSwapper.ParametersOf(_params.ModuleIn(unit, op.DeviceSlot)), first: op.MicroBatch == 0);
    }

    private void Download(Operation op)
    {
        int unit = _params.UnitOf(op.Unit);
        // With several ranks the unit's gradients were reduce-scattered: this rank downloads its shard of their mean.
        using FlatParameters? reduced = _ranks is null ? null : TakeReduced(unit);
        FlatParameters parameters = reduced ?? ParameterSwapper.ParametersOf(_params.ModuleIn(unit, op.DeviceSlot));
        bool first = op.MicroBatch == 0;
        long bytes = _grads.DownloadBytes(parameters, first);
        _grads.Download(unit, parameters, first, last: op.MicroBatch == _settings.GradAccumulation - 1);
        Io.Download(bytes);
    }

    private void Update(Operation op)
    {
        SubGroup g = GroupOf(op);
        if (_settings.Schedule == StepSchedule.Overlapped && g.Index == 0)
        {
            // A download on the copy stream may still be in flight: its Σg² is taken when it has landed.
            _grads.Settle(g.Unit);
            // The step's loss is known before its last backward, and this unit's Σg² before its first update.
            if (_scaler is null) NoteIfNonFinite(g.Unit);
            ComputeScales([g.Unit]);
        }
        // One process stops updating at the first non-finite value; ranks, which learn of each other's only after the step,
        // all apply the same updates so their shards stay one model (the step is then reported and the run stops unsaved).
        // (A delayed update was decided sound before it was deferred; the next step's own non-finite value must not stop it.)
        if (_ranks is null && !Delayed && Volatile.Read(ref _nonFinite) is not null) return;
        // Delayed: the working copies the running passes read are left alone (the spare host copies take θ, or the write-back does).
        var (writeBack, sink) = Delayed ? DelayedTargets()
            : _params.Tier == StorageTier.Nvme ? (null, null)
            : ((Action<int, long, ReadOnlySpan<float>>)((u, offset, master) => _params.WriteBack(u, offset, master, traced: false)), (IHalfSink)_params);
        // Adam's step counter counts applied updates only, as PyTorch's GradScaler skips optimizer.step().
        _optim.Step(g, op.Slot, _updateGrads, _unitScale[g.Unit], _updateStep - (_scaler?.Skipped ?? 0), writeBack, sink);
    }

    /// <summary>Closes a micro-batch left open by a failed step.</summary>
    private void AbandonMicroBatch()
    {
        if (_micro is not null) ReleaseCheckpointInputs(_micro);
        _micro?.Dispose();
        _micro = null;
        // A layer's gradients from a backward whose take never came (FlatParameters.Backward holds them until then).
        try { _params.ClearDeviceGradients(); } catch (Exception) { }
    }
}

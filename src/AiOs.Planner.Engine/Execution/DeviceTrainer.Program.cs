using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;
using TorchSharp;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Execution;

/// <summary>The step program the resident engine executes: the one the simulator predicts for an <c>aios</c> run that offloads nothing.</summary>
public static class ResidentProgram
{
    /// <summary>
    /// One step for <paramref name="settings"/> (nothing offloaded, one process) in the shape <see cref="ProgramShape.For"/> gives a
    /// resident run: per micro-batch the embedding, each layer and the head forward, then their backward in reverse (each layer
    /// recomputed first under activation checkpointing), and one device optimizer operation over the model.
    /// </summary>
    /// <remarks>
    /// With several <paramref name="ranks"/> the model is replicated (no ZeRO stage): after the last micro-batch's whole
    /// backward come the gradient all-reduces data parallelism needs, one per unit (a <see cref="OpKind.ReduceScatter"/> of
    /// twice the bytes, as the simulator prices plain data parallelism), and the optimizer waits for them.
    /// </remarks>
    public static StepProgram For(ModelSpec spec, TrainingSettings settings, int ranks = 1)
    {
        TrainingSettings one = ranks > 1 ? settings with { GpusPerNode = ranks, Nodes = 1, ZeroStage = ZeroStage.None } : settings with { GpusPerNode = 1, Nodes = 1 };
        return StepScheduler.Build(spec, EngineProgram.Host, one, false, ProgramShape.For(one, EngineProgram.Host));
    }
}

/// <summary>The resident trainer's handlers of its step program's operations (all on the compute thread).</summary>
public sealed partial class DeviceTrainer
{
    /// <summary>What one step carries between operations.</summary>
    private sealed class StepState(int step, Func<int, TokenBatch> batchOf) : IDisposable
    {
        public int Step { get; } = step;
        public Func<int, TokenBatch> BatchOf { get; } = batchOf;
        public double Loss { get; set; }
        public long Tokens { get; set; }
        public string? NonFinite;
        public bool Skipped { get; set; }
        public double? UsedScale { get; init; }

        /// <summary>The micro-batches' losses summed on the device in fp64, not yet read (<see cref="ReadLosses"/>).</summary>
        private Tensor? _losses;

        /// <summary>
        /// Adds a micro-batch's loss to the step's sum on the device, without waiting for it. Reading it here (<c>item</c>) made
        /// the host wait for the whole forward before it queued the first backward kernel, so the backward started with an empty
        /// queue and every host delay in it became device idle time. fp64 sums of the fp32 losses, in micro-batch order, are
        /// the sums the host made before, to the bit.
        /// </summary>
        public void AddLoss(Tensor loss)
        {
            using var _ = no_grad();
            if (_losses is null)
            {
                // A copy, never the loss itself (an fp64 loss would otherwise be summed into in place).
                _losses = loss.detach().to(ScalarType.Float64, copy: true).reshape(1);
                _losses.DetachFromDisposeScope();
            }
            else
                _losses.add_(loss.detach().reshape(1), Native.KeptScalars.One);
        }

        /// <summary>The step's summed losses still on the device (null once read, or when none was added).</summary>
        public Tensor? PendingLosses => _losses;

        /// <summary>Reads the step's loss sum on its own (a wait for the device) and applies it (<see cref="ApplyLosses"/>); the update reads it with its Σg² instead.</summary>
        public void ReadLosses(bool scaled)
        {
            if (_losses is null) return;
            ApplyLosses(_losses.item<double>(), scaled);
        }

        /// <summary>
        /// Takes <paramref name="sum"/>, the value of <see cref="PendingLosses"/> read back, into <see cref="Loss"/> and frees the
        /// device copy; a non-finite sum (some micro-batch's loss was) is named in <see cref="NonFinite"/> unless
        /// <paramref name="scaled"/> (fp16's loss scaler skips such a step itself).
        /// </summary>
        public void ApplyLosses(double sum, bool scaled)
        {
            _losses?.Dispose();
            _losses = null;
            Loss += sum;
            if (!scaled && !double.IsFinite(sum)) NonFinite ??= $"the loss ({sum})";
        }

        public void Dispose()
        {
            _losses?.Dispose();
            _losses = null;
        }
    }

    /// <summary>What the compute thread carries between the operations of one micro-batch.</summary>
    private sealed class MicroBatchState : IDisposable
    {
        public required TokenBatch Batch { get; init; }
        public required DisposeScope Scope { get; init; }
        public required DropoutReplay Replay { get; init; }
        public required Tensor Targets { get; init; }
        public required Tensor[] LayerInputs { get; init; }
        public required Tensor[] LayerOutputs { get; init; }
        public Tensor? Embedded, X, Hidden, Loss, Gradient;

        /// <summary>
        /// After layer i's backward its output (recomputed under checkpointing), the gradient it was given and its detached input
        /// (the leaf that held <paramref name="inputGradient"/>; the handle given keeps that alive) are dead. Freed now, not when
        /// the micro-batch's scope closes, so backward holds one layer's of each instead of one per layer (they were kept until
        /// the embedding's backward before 2026-12-05). Without checkpointing the output shares its storage with layer i+1's
        /// input, freed by the layer before; with it, the forward's output handle went at the recompute.
        /// </summary>
        public void ReleaseLayerBackward(int i, Tensor inputGradient)
        {
            if (!Releases)
            {
                LayerOutputs[i] = null!;
                Gradient = inputGradient;
                return;
            }
            Free(LayerOutputs[i]);
            LayerOutputs[i] = null!;
            // Without checkpointing the last layer's output is the final hidden states' handle too.
            if (X is { IsInvalid: true }) X = null;
            Free(Gradient);
            Free(LayerInputs[i]);
            LayerInputs[i] = null!;
            Gradient = inputGradient;
        }

        /// <summary>CUDA graphs: the head's gradient of the final hidden states was copied into the last layer's fixed one, so it is dead; <paramref name="next"/> is the gradient the embedding's backward is given.</summary>
        public void ReplaceGradient(Tensor? next)
        {
            if (Releases) Free(Gradient);
            Gradient = next;
        }

        /// <summary>After the head's backward the detached final hidden states are dead (the handle <see cref="Gradient"/> keeps their gradient).</summary>
        public void ReleaseHidden()
        {
            if (!Releases) return;
            Free(Hidden);
            Hidden = null;
        }

        /// <summary>
        /// Checkpointing, layer i recomputed: the forward's handle of its output (which shares its storage with layer i+1's
        /// input, or is the final hidden states for the last layer) is no longer read; with layer i+1's input freed by its
        /// backward, the checkpoint's storage goes with it.
        /// </summary>
        public void ReleaseForwardOutput(Tensor forwardOutput)
        {
            if (!Releases) return;
            if (ReferenceEquals(forwardOutput, X)) X = null;
            Free(forwardOutput);
        }

        /// <summary>
        /// Whether backward frees each layer's tensors as it passes them (unset or anything but 0); <c>AIOS_BACKWARD_RELEASE=0</c>
        /// keeps them in the micro-batch's scope until its end, as before 2026-12-05: a diagnostic for an A/B of the step time
        /// (docs/user-guide.md, environment variables). Read once per process, here, and consulted only by this type's release
        /// methods (<see cref="ReleaseHidden"/>, <see cref="ReleaseLayerBackward"/>, <see cref="ReleaseForwardOutput"/>).
        /// </summary>
        private static readonly bool Releases = Environment.GetEnvironmentVariable("AIOS_BACKWARD_RELEASE") != "0";

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

    /// <summary><c>AIOS_LOSS_AT_FORWARD=1</c>: each micro-batch's loss is read as its forward ends, as before 2026-12-07 (a wait for the device there; for an A/B).</summary>
    private static readonly bool LossAtForward = Environment.GetEnvironmentVariable("AIOS_LOSS_AT_FORWARD") == "1";

    private StepState _state = new(0, _ => throw new InvalidOperationException("No step in progress."));
    private MicroBatchState? _micro;
    /// <summary>Tests: called after each layer's backward with the layer and the tensors its micro-batch's dispose scope still holds.</summary>
    internal Action<int, int>? LayerBackwardProbe { get; set; }

    private Dictionary<OpKind, Action<Operation>> Handlers() => new()
    {
        [OpKind.Forward] = op => Synced(() => Forward(op)),
        [OpKind.Recompute] = op => Synced(() => Recompute(op)),
        [OpKind.Backward] = op => Synced(() => Backward(op)),
        [OpKind.ReduceScatter] = ReduceGradients,
        [OpKind.OptimizerStep] = _ => Synced(() =>
        {
            string? nonFinite = _state.NonFinite;
            _state.Skipped = !Update(_state.Step, ref nonFinite);
            _state.NonFinite = nonFinite;
            DeviceMemory?.Note($"step {_state.Step}'s update");
        }),
    };

    /// <summary>
    /// Runs <paramref name="work"/>. On a GPU its span is timed by device events, so the host does not wait; only with
    /// AIOS_SYNC_SPANS=1 (no device clock) does it wait for the device before the executor closes the span.
    /// </summary>
    private void Synced(Action work)
    {
        work();
        if (_sync && Trace.DeviceClock is null) cuda.synchronize();
    }

    private void Forward(Operation op)
    {
        bool checkpointing = _settings.ActivationCheckpointing;
        switch (op.Unit.Kind)
        {
            case UnitKind.Embedding:
            {
                int micro = op.MicroBatch;
                Trace.CurrentMicroBatch = micro;
                // With several ranks each takes its own micro-batches of the step's global batch.
                int global = DataParallel.GlobalMicroBatch(micro, _settings.GradAccumulation, _ranks);
                TokenBatch batch = _state.BatchOf(global);
                _state.Tokens += batch.Tokens;
                // Each unit's gradients replace (first micro-batch) or add into its flat buffer as its backward ends (Land),
                // so only the fp32 sums are zeroed.
                if (micro == 0 && _accumulators is not null)
                    using (no_grad())
                        foreach (Tensor a in _accumulators) a.zero_();
                // Without a warm-up the layers are captured here, before the micro-batch's dispose scope opens.
                if (_settings.CudaGraphs) EnsureGraphs(batch);
                // The micro-batch's dispose scope closes after the embedding's backward.
                var scope = NewDisposeScope();
                _micro = new MicroBatchState
                {
                    Batch = batch, Scope = scope, Replay = new DropoutReplay(_options.Seed, _state.Step, global), Targets = batch.Targets.to(_device),
                    LayerInputs = new Tensor[_spec.NumLayers], LayerOutputs = new Tensor[_spec.NumLayers],
                };
                Tensor inputs = batch.Inputs.to(_device);
                _micro.Replay.Before(-1, _device);
                _micro.Embedded = _model.Outer.forward(inputs);
                _micro.X = _micro.Embedded;
                break;
            }
            case UnitKind.Layer when _graphs is not null:
            {
                int i = op.Unit.Number;
                if (i == 0)
                    using (no_grad())
                        _graphs.Input.copy_(_micro!.X!);
                _micro!.Replay.Before(i, _device);
                _graphs.Forward(i);
                if (i == _spec.NumLayers - 1) _micro.X = _graphs.Output;
                break;
            }
            case UnitKind.Layer:
            {
                int i = op.Unit.Number;
                // Each layer's graph starts at a detached copy of its input, so backward can walk the layers one at a time.
                _micro!.LayerInputs[i] = _micro.X!.detach().requires_grad_(!checkpointing);
                _micro.Replay.Before(i, _device);
                using (checkpointing ? no_grad() : null)
                    _micro.X = _micro.LayerOutputs[i] = _model.Layers[i].forward(_micro.LayerInputs[i]);
                break;
            }
            default:
            {
                _micro!.Hidden = _micro.X!.detach().requires_grad_(true);
                _micro.Loss = _model.Outer.Loss(_micro.Hidden, _micro.Targets, _settings.GradAccumulation, _settings.HeadLoss);
                // Read in the same copy as the update's Σg², not here: the host keeps queueing the backward while the device
                // finishes the forward, and waits once, after the norms are queued.
                _state.AddLoss(_micro.Loss);
                if (LossAtForward)
                    using (Trace.HostWait())
                        _state.ReadLosses(_scaler is not null);
                DeviceMemory?.Note($"step {_state.Step}'s loss");
                break;
            }
        }
    }

    private void Recompute(Operation op)
    {
        int i = op.Unit.Number;
        _micro!.LayerInputs[i].requires_grad_(true);
        _micro.Replay.Before(i, _device);
        Tensor forwardOutput = _micro.LayerOutputs[i];
        _micro.LayerOutputs[i] = _model.Layers[i].forward(_micro.LayerInputs[i]);
        _micro.ReleaseForwardOutput(forwardOutput);
    }

    private void Backward(Operation op)
    {
        switch (op.Unit.Kind)
        {
            case UnitKind.Head:
                // fp16: back-propagate the scaled loss; the update divides the scale out.
                if (_scaler is null) _micro!.Loss!.backward();
                else
                {
                    // The scale as a Scalar this frame holds until the call returns (KeptScalars).
                    using Scalar scale = _scaler.Scale;
                    _micro!.Loss!.mul(scale).backward();
                }
                _micro.Gradient = _micro.Hidden!.grad ?? throw new InvalidOperationException("The loss produced no gradient for the final hidden states.");
                _micro.ReleaseHidden();
                break;
            case UnitKind.Layer when _graphs is not null:
            {
                int i = op.Unit.Number;
                if (i == _spec.NumLayers - 1)
                {
                    using (no_grad()) _graphs.OutputGradient.copy_(_micro!.Gradient!);
                    _micro.ReplaceGradient(null);
                }
                _graphs.Backward(i);
                LandCaptured(i, op.MicroBatch);
                if (i == 0) _micro!.ReplaceGradient(_graphs.InputGradient);
                SampleAfterLayerBackward(i);
                break;
            }
            case UnitKind.Layer:
            {
                int i = op.Unit.Number;
                _micro!.ReleaseLayerBackward(i, LayerBackward(i, op.MicroBatch));
                LayerBackwardProbe?.Invoke(i, _micro.Scope.DisposablesCount);
                SampleAfterLayerBackward(i);
                break;
            }
            default:
                _micro!.Embedded!.backward([_micro.Gradient!]);
                Land(_spec.NumLayers, op.MicroBatch);
                DeviceMemory?.Sample();
                _micro.Dispose();
                _micro = null;
                break;
        }
    }

    /// <summary>
    /// Layer <paramref name="i"/>'s backward (<see cref="FlatParameters.Backward"/>: one autograd call for its parameters' and
    /// its input's gradients); its parameters' gradients land in its flat buffer (<see cref="Land"/>) and its input's, for the
    /// layer below, is returned.
    /// </summary>
    private Tensor LayerBackward(int i, int microBatch)
    {
        Tensor input = _model.Unit(i).Backward(_micro!.LayerOutputs[i], _micro.LayerInputs[i], _micro.Gradient!);
        Land(i, microBatch);
        return input;
    }

    /// <summary>
    /// Moves unit <paramref name="u"/>'s gradients from its parameters into its flat buffer once its backward has ended (the
    /// outer block's after the embedding's, which adds to the head's): one concatenation of the gradients autograd made,
    /// which replaces the buffer at the step's first micro-batch, is added to it at later ones, or is added to the fp32 sums
    /// under mixed-precision accumulation. Autograd accumulating into gradients bound as views of the buffer launched one
    /// add per parameter in every backward (16 per GPT-2 layer) and needed the buffers zeroed before each step; the
    /// concatenation is one kernel per unit. It holds one unit's gradients twice for a moment (EngineMemory's backward item).
    /// </summary>
    private void Land(int u, int microBatch)
    {
        using var _ = no_grad();
        Tensor packed = _model.Unit(u).TakePackedGradients(_gradients[u].dtype);
        if (_accumulators is not null)
        {
            _accumulators[u].add_(packed, Native.KeptScalars.One);
            packed.Dispose();
        }
        else if (microBatch == 0)
        {
            _gradients[u].Dispose();
            _gradients[u] = packed;
        }
        else
        {
            _gradients[u].add_(packed, Native.KeptScalars.One);
            packed.Dispose();
        }
    }

    /// <summary>Device memory after layer <paramref name="i"/>'s backward: noted by name at the first and last layer, sampled between.</summary>
    private void SampleAfterLayerBackward(int i)
    {
        if (i == _spec.NumLayers - 1 || i == 0) DeviceMemory?.Note($"step {_state.Step}'s backward of layer {i}");
        else DeviceMemory?.Sample();
    }

    /// <summary>
    /// <see cref="Land"/> for a layer whose backward was replayed from its CUDA graph: its packed gradients are the graph's fixed
    /// tensor, which the next micro-batch's replay overwrites. At one micro-batch a step they are the unit's gradient buffer
    /// itself (<see cref="EnsureGraphs"/>), so nothing moves; otherwise they are added to the fp32 sums, or copied into the buffer
    /// at the first micro-batch and added to it at later ones.
    /// </summary>
    private void LandCaptured(int layer, int microBatch)
    {
        Tensor packed = _graphs!.PackedGradients(layer);
        using var _ = no_grad();
        if (_accumulators is not null) _accumulators[layer].add_(packed, Native.KeptScalars.One);
        else if (_settings.GradAccumulation == 1) return;
        else if (microBatch == 0) _gradients[layer].copy_(packed);
        else _gradients[layer].add_(packed, Native.KeptScalars.One);
    }

    /// <summary>Closes a micro-batch left open by a failed step.</summary>
    private void AbandonMicroBatch()
    {
        _state.Dispose();
        _micro?.Dispose();
        _micro = null;
        // A layer's gradients from a backward whose landing never came (FlatParameters.Backward holds them until then).
        for (int u = 0; u <= _spec.NumLayers; u++) _model.Unit(u).ClearGradients();
    }
}

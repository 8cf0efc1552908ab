using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Engine.Execution;

/// <summary>
/// The delayed schedule (ZeRO-Offload's one-step delayed parameter update): step i's optimizer part runs on its own
/// executor while step i+1's forward and backward run, so step i+1's gradient is taken at θ_{i−1} and applied to θ_i.
/// </summary>
/// <remarks>
/// Deterministic by construction, whatever the timing: (1) gradients are double-buffered (two RAM stores; the pending
/// update reads one while the next step accumulates into the other); (2) the pending update changes only the optimizer's
/// fp32 master and moments, never the working copies the passes read (device, bf16/fp32 host copy or NVMe file); those get
/// θ_i in one write-back (the program's <see cref="OpKind.MasterWriteBack"/>) after step i+1's passes have ended and the update has finished, before step i+2 begins.
/// Parameters in host RAM are double-buffered instead (<see cref="ParameterSwapper.AllocateSpareCopies"/>): the update writes θ_i
/// into the spare host copies in its Adam pass, and the write-back swaps spare and active (no pass over the parameters); device-resident
/// units and NVMe files keep the serial write-back from the master. So every
/// step after the warm-up computes at exactly θ_{i−1}. Steps 1..<see cref="DelayedWarmupSteps"/> (the setting
/// <see cref="TrainingSettings.DelayedWarmupSteps"/>) update serially, as the paper's warm-up does; the step counts from the
/// start of training, so a run resumed at step k continues delayed when k is past the warm-up and serial otherwise. A checkpoint (and <see cref="MasterOf"/>) first applies the pending update, so a checkpoint
/// holds θ_i and the step after a save, as the step after a resume, computes at θ_i: resume is exact.
/// </remarks>
public sealed partial class LayerwiseTrainer
{
    /// <summary>Steps that update serially before the delayed update starts (the paper's warm-up): the run's setting, at least one.</summary>
    public int DelayedWarmupSteps => _settings.DelayedWarmupSteps;

    /// <summary>The gradient store the optimizer part reads: the passes' own, or under the delayed schedule the pending step's.</summary>
    private GradientStore _updateGrads = null!;
    /// <summary>The step whose gradients the optimizer part applies (Adam's step counter and learning rate).</summary>
    private int _updateStep;
    /// <summary>Delayed schedule: the second gradient store (the two alternate by step); null otherwise.</summary>
    private GradientStore? _spareGrads;
    /// <summary>Delayed schedule: the executor of the pending optimizer part, beside the passes'.</summary>
    private ProgramExecutor? _updateExecutor;
    /// <summary>Delayed schedule: whether a step's update is computed but not yet applied (it runs during the next step's passes).</summary>
    private bool _updatePending;

    private bool Delayed => _settings.Schedule == StepSchedule.Delayed;

    /// <summary>Whether the working parameters are double-buffered host copies (the delayed schedule with parameters in RAM).</summary>
    internal bool DoubleBufferedParameters => _params.DoubleBuffered;

    private Operation[]? _updateOps, _writeBackOps;

    /// <summary>Delayed schedule: the program's optimizer part without its write-back of θ (that waits for the passes too).</summary>
    private Operation[] UpdateOps => _updateOps ??= _optimizerOps.Where(o => o.Kind != OpKind.MasterWriteBack).ToArray();

    /// <summary>Delayed schedule: the program's one write-back of θ, after the passes and the update.</summary>
    private Operation[] WriteBackOps => _writeBackOps ??= _optimizerOps.Where(o => o.Kind == OpKind.MasterWriteBack).ToArray() is [_] one
        ? one
        : throw new InvalidOperationException($"The delayed schedule's step program must hold one {OpKind.MasterWriteBack} operation; it holds {_optimizerOps.Count(o => o.Kind == OpKind.MasterWriteBack)}.");

    /// <summary>Delayed schedule: starts the pending update on a worker, beside the passes about to run; null when none is pending.</summary>
    private Task? StartPendingUpdate() =>
        _updatePending ? Task.Factory.StartNew(() => _updateExecutor!.Run(UpdateOps, _handlers), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default) : null;

    /// <summary>Waits for <paramref name="update"/> and writes θ into the working copies (the pending update is then applied).</summary>
    private void FinishPendingUpdate(Task? update)
    {
        if (update is null) return;
        try
        {
            update.GetAwaiter().GetResult();
        }
        finally
        {
            _updatePending = false;
        }
        RunWriteBack();
    }

    /// <summary>Applies a pending update now (serially): before a checkpoint, a read of the weights, or the end of a run.</summary>
    public void ApplyPendingUpdate() => FinishPendingUpdate(StartPendingUpdate());

    /// <summary>Delayed schedule, after a step's passes: serial during warm-up, else left pending for the next step's passes.</summary>
    private void UpdateOrDefer(int step)
    {
        _updateGrads = _grads;
        _updateStep = step;
        if (step <= DelayedWarmupSteps)
        {
            _updateExecutor!.Run(UpdateOps, _handlers);
            RunWriteBack();
            return;
        }
        _updatePending = true;
        // The next step's passes accumulate into the other store while this one is read by the update.
        (_grads, _spareGrads) = (_spareGrads!, _grads);
    }

    /// <summary>Runs the program's write-back of θ (its span carries the operation's id).</summary>
    private void RunWriteBack() => _updateExecutor!.Run(WriteBackOps, _handlers);

    /// <summary>
    /// Where the delayed update writes the training-precision copy in its Adam pass: the spare host copies when double-buffered,
    /// else nowhere (both null: the working copies the passes read take θ in <see cref="WriteBackMaster"/>).
    /// </summary>
    private (Action<int, long, ReadOnlySpan<float>>? WriteBack, IHalfSink? Sink) DelayedTargets() =>
        _params.DoubleBuffered ? (_params.WriteSpare, _params.Spare) : (null, null);

    /// <summary>
    /// The <see cref="OpKind.MasterWriteBack"/> handler: swaps the spare host copies (θ_i, written by the update) in, or, when
    /// not double-buffered, copies every unit's master weights into the parameters the passes read.
    /// </summary>
    private void WriteBackMaster(Operation op)
    {
        // No upload still queued on a copy stream may read a host copy, or a kernel a resident unit, while it changes (or,
        // once swapped, while the next update writes it as the spare).
        _streamOrder?.SynchronizeAll();
        if (_params.DoubleBuffered != (op.Bytes.Value == 0))
            throw new InvalidOperationException($"The program's write-back of θ carries {op.Bytes} of host traffic but the engine {(_params.DoubleBuffered ? "swaps its double-buffered copies" : "writes from the master")}; the program was built for other settings.");
        if (_params.DoubleBuffered)
        {
            _params.SwapCopies();
            return;
        }
        for (int u = 0; u < _unitScale.Length; u++)
        {
            int unit = u;
            _optim.VisitMaster(unit, (offset, master) => _params.WriteBack(unit, offset, master, traced: false));
        }
    }
}

using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Execution;

/// <summary>
/// What one optimizer step took. Phase times are wall time on the compute thread: forward (all
/// micro-batches), backward (including recomputation and gradient offload), optimizer (the part not
/// hidden behind backward: all of it for the DeepSpeed schedule, the tail after backward for the
/// overlapped one), and the time spent waiting for parameter or optimizer-state reads (summed over threads).
/// </summary>
public sealed record StepResult(int Step, double Loss, long Tokens, SimDuration Wall, SimDuration Forward, SimDuration Backward, SimDuration Optimizer, SimDuration IoStall)
{
    /// <summary>fp16: the loss scale the step's backward used; null otherwise.</summary>
    public double? LossScale { get; init; }
    /// <summary>fp16: the gradients overflowed, so no update was applied (and the scale was halved).</summary>
    public bool Skipped { get; init; }
    /// <summary>The learning rate of the update this step applied (its schedule's rate); null when no update was applied.</summary>
    public double? LearningRate { get; init; }
    /// <summary>
    /// Outside fp16 (whose loss scaler skips such steps itself): what was not a finite number, the loss or a unit's gradients, in
    /// which case the trainer did not apply the update (the overlapped schedule: not to the units whose gradients or loss were
    /// known to be non-finite when they were updated) and the run must stop; null for a sound step.
    /// </summary>
    public string? NonFinite { get; init; }
}

namespace AiOs.Planner.Settings;

/// <summary>
/// The schedules the bundled engine (the aios executor) cannot run with these settings: one rule for <c>aios train</c>
/// (EngineOptions.Check), <c>plan</c> (SettingsRules.Check) and the tuner's search, so a plan never calls feasible, and the
/// tuner never picks, what the engine refuses.
/// </summary>
public static class EngineScheduleRule
{
    /// <summary>Each refusal of <paramref name="s"/>'s schedule on <paramref name="ranks"/> processes, with its fix; empty when it runs.</summary>
    public static IEnumerable<string> Problems(TrainingSettings s, int ranks)
    {
        if (s.Precision == Precision.Fp16 && s.Schedule == StepSchedule.Overlapped)
            yield return "fp16 loss scaling must see every gradient before any update (to skip a step that overflowed), which the overlapped schedule does not wait for; use --schedule deepspeed or bf16";
        if (s.Schedule == StepSchedule.Delayed && ranks > 1)
            yield return $"--schedule delayed is not supported with {ranks} GPUs yet: the deferred update's write-back is per process; use --schedule overlapped or one GPU";
        if (s.Schedule == StepSchedule.Delayed && s.EffectiveGradientOffload == OffloadTier.Nvme)
            yield return "--schedule delayed holds two steps' gradients at once (one being applied, the next accumulating), double-buffered in RAM, but the gradients are on NVMe (--offload-optimizer nvme puts them there by default): add --offload-gradients cpu";
    }
}

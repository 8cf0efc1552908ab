using AiOs.Planner.Memory;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Tuning;

/// <summary>The optimizer RAM budget the tuner gives NVMe-optimizer candidates, and the values it searches.</summary>
public static partial class Tuner
{
    /// <summary>Shares of the RAM allowance the search tries for the optimizer RAM budget (0: every sub-group on NVMe).</summary>
    private static readonly double[] BudgetShares = [0, 0.25, 0.5, 0.75, 1];

    /// <summary>Whether the optimizer RAM budget means anything for <paramref name="s"/>: the optimizer on NVMe, run by the aios engine.</summary>
    internal static bool TakesOptimizerBudget(TrainingSettings s) => s.OptimizerOffload == OffloadTier.Nvme && s.Executor == ExecutorKind.Aios;

    /// <summary>
    /// Host RAM per process the machine allows for optimizer sub-groups in <paramref name="s"/>: RAM × (1 − headroom −
    /// <see cref="TuneRequest.OptimizerRamMargin"/>) less the host peak with every sub-group on NVMe, shared by the
    /// processes of a node; zero when nothing is left.
    /// </summary>
    internal static Bytes OptimizerRamAllowance(TuneRequest r, TrainingSettings s)
    {
        var plan = MemoryPlanner.Plan(r.Model, r.Hardware, s with { OptimizerRamBudget = null });
        double usable = r.Hardware.Cpu.Ram.Value * (1 - r.MemoryHeadroom - r.OptimizerRamMargin);
        long free = (long)usable - plan.CpuPeak.Value;
        int processes = Math.Max(1, s.GpusPerNode ?? r.Hardware.GpusPerNode);
        return free <= 0 ? Bytes.Zero : new Bytes(free / processes);
    }

    /// <summary>
    /// The budget a structure starts with: the user's (--optimizer-ram-budget), else the whole allowance; null where the
    /// budget means nothing (optimizer not on NVMe, or DeepSpeed pricing).
    /// </summary>
    internal static Bytes? DefaultOptimizerBudget(TuneRequest r, TrainingSettings s)
    {
        if (!TakesOptimizerBudget(s)) return null;
        if (r.Base.OptimizerRamBudget is { } fixedBudget) return fixedBudget;
        Bytes allowance = OptimizerRamAllowance(r, s);
        return allowance.Value > 0 ? allowance : null;
    }

    /// <summary>
    /// <paramref name="s"/> with a tuner-chosen optimizer RAM budget cut to <see cref="OptimizerRamAllowance"/> (another knob
    /// may have grown the rest of the host peak since the budget was set), so every candidate keeps the margin; a budget
    /// the user fixed is left alone.
    /// </summary>
    internal static TrainingSettings WithinAllowance(TuneRequest r, TrainingSettings s)
    {
        if (!TakesOptimizerBudget(s) || r.Base.OptimizerRamBudget is not null || s.OptimizerRamBudget is not { Value: > 0 } budget) return s;
        Bytes allowance = OptimizerRamAllowance(r, s);
        return budget <= allowance ? s : s with { OptimizerRamBudget = allowance.Value > 0 ? allowance : null };
    }

    /// <summary>The knob: shares of the allowance, searched only when the user fixed no budget.</summary>
    private static Knob OptimizerBudgetKnob(TuneRequest r) => new("optimizer RAM budget",
        s => TakesOptimizerBudget(s) && r.Base.OptimizerRamBudget is null,
        BudgetShares.Select(share => (Func<TrainingSettings, TrainingSettings>)(s =>
        {
            Bytes budget = OptimizerRamAllowance(r, s) * share;
            return s with { OptimizerRamBudget = budget.Value > 0 ? budget : null };
        })).ToArray());
}

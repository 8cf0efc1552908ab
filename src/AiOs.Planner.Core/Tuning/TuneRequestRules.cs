using AiOs.Planner.Simulation.Program;
using System.Globalization;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Tuning;

/// <summary>
/// What is wrong with a tuning request whatever the tuner picks: its own limits, and the fixed settings (GPUs,
/// nodes, sequence length, buffers…), checked on the simplest candidate so that a bad flag is reported as itself
/// rather than as "nothing fits".
/// </summary>
public static class TuneRequestRules
{
    /// <summary>Every problem with <paramref name="r"/>, each with the flag to change; empty when the search can run.</summary>
    public static IReadOnlyList<SettingsProblem> Check(TuneRequest r)
    {
        var problems = CheckLimits(r.MemoryHeadroom, r.MaxMicroBatch, r.MaxGradAccumulation, r.GlobalBatch);
        // Checked on its own (from 0 to below 0.5, as the headroom), so headroom + margin stays below 1.
        if (!(r.OptimizerRamMargin >= 0 && r.OptimizerRamMargin < 0.5))
            problems.Add(new SettingsProblem("--optimizer-ram-margin", $"the optimizer RAM margin is the share of host RAM kept free beyond the headroom when sizing the optimizer's RAM budget, from 0 to below 0.5, e.g. 0.1 (found {r.OptimizerRamMargin.ToString(CultureInfo.InvariantCulture)})"));
        void Add(string flag, string message) => problems.Add(new SettingsProblem(flag, message));

        if (r.MicroBatch is < 1) Add("--micro-batch", $"the micro-batch must be at least 1 sequence (found {r.MicroBatch})");

        var simplest = Tuner.Simplest(r);
        var fixedProblems = SettingsRules.Check(simplest, r.Model, r.Hardware);
        problems.AddRange(fixedProblems);
        if (r.GlobalBatch is { } global && fixedProblems.All(p => p.Flag is not ("--gpus" or "--nodes")))
        {
            var (gpus, nodes) = Topology.Of(simplest, r.Hardware);
            int world = gpus * nodes;
            int lower = global / world * world;
            if (global >= 1 && global % world != 0)
                Add("--global-batch", $"the global batch ({global} sequences) must be a multiple of the {world} GPUs ({gpus} per node × {nodes} node(s)): " +
                                      $"every GPU takes micro-batch × accumulation sequences; use {(lower == 0 ? $"{world}" : $"{lower} or {lower + world}")}");
            else if (global >= 1 && r.MicroBatch is { } micro and >= 1 && global / world % micro != 0)
                Add("--micro-batch", $"the fixed micro-batch ({micro}) must divide the global batch's {global / world} sequences per GPU ({global} ÷ {world} GPUs), " +
                                     "the accumulation making up the rest; give a divisor, or leave --micro-batch out to let the tuner choose");
        }
        return problems;
    }

    /// <summary>Problems with the search's own limits, which hold for any model and machine (also checked once by <c>whatif</c>).</summary>
    public static List<SettingsProblem> CheckLimits(double memoryHeadroom, int maxMicroBatch, int maxGradAccumulation, int? globalBatch)
    {
        var problems = new List<SettingsProblem>();
        void Add(string flag, string message) => problems.Add(new SettingsProblem(flag, message));
        if (!(memoryHeadroom >= 0 && memoryHeadroom < 0.5))
            Add("--memory-headroom", $"memory headroom is the share of each tier kept free, from 0 to below 0.5, e.g. 0.05 for 5% (found {memoryHeadroom.ToString(CultureInfo.InvariantCulture)})");
        if (maxMicroBatch < 1) Add("--max-micro-batch", $"the largest micro-batch must be at least 1 (found {maxMicroBatch})");
        if (globalBatch is null && maxGradAccumulation < 1)
            Add("--max-grad-accumulation", $"the largest gradient accumulation must be at least 1 (found {maxGradAccumulation})");
        if (globalBatch is < 1) Add("--global-batch", $"the global batch must be at least 1 sequence per optimizer step (found {globalBatch})");
        return problems;
    }
}

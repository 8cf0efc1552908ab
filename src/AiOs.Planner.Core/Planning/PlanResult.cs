using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Hardware;
using AiOs.Planner.Learning;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;

namespace AiOs.Planner.Planning;

/// <summary>What a plan says: whether the settings fit, why not, and the memory per tier.</summary>
public sealed record PlanResult
{
    public required ModelSpec Model { get; init; }
    public required HardwareProfile Hardware { get; init; }
    /// <summary>The settings after defaults that depend on other settings were resolved.</summary>
    public required TrainingSettings Settings { get; init; }
    public required MemoryPlan Memory { get; init; }
    /// <summary>Settings that cannot work at all (fix the flag named).</summary>
    public required IReadOnlyList<SettingsProblem> SettingsProblems { get; init; }
    /// <summary>Capacity problems: a tier that would overflow, with what to change.</summary>
    public required IReadOnlyList<string> CapacityProblems { get; init; }
    /// <summary>The simulated steady-state step; null when the settings are invalid or cannot be simulated.</summary>
    public StepResult? Step { get; init; }
    /// <summary>The simulated first step (no prefetch trace yet), when asked for.</summary>
    public StepResult? FirstStep { get; init; }
    /// <summary>What became of the profile's learned correction of <see cref="Step"/>; null when the profile has none.</summary>
    public CorrectionOutcome? Correction { get; init; }
    /// <summary>Defaults filled in and implications set aside while the settings were built, and why, one line each.</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];
    /// <summary>The <c>--gpu-memory-limit</c> the GPU of <see cref="Hardware"/> is held to (<see cref="GpuMemoryLimit.Apply"/>); null: the whole card.</summary>
    public Units.Bytes? GpuMemoryLimit { get; init; }

    /// <summary>GPUs per node and nodes, resolved once from the settings and the profile.</summary>
    public Topology Topology => Topology.Of(Settings, Hardware);
    /// <summary>GPU processes per node.</summary>
    public int GpusPerNode => Topology.GpusPerNode;
    /// <summary>Nodes taking part.</summary>
    public int Nodes => Topology.Nodes;

    /// <summary>True when the settings are valid and every tier fits.</summary>
    public bool Feasible => SettingsProblems.Count == 0 && CapacityProblems.Count == 0;

    /// <summary>Every problem as one line each.</summary>
    public IEnumerable<string> Problems => SettingsProblems.Select(p => p.ToString()).Concat(CapacityProblems);
}

using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Simulation.Program;

/// <summary>
/// The operations of one training step in a topological order (every dependency comes earlier), as one
/// GPU's process performs them. Each resource serves its operations in this order.
/// </summary>
public sealed class StepProgram
{
    public required ModelSpec Model { get; init; }
    public required TrainingSettings Settings { get; init; }
    public required IReadOnlyList<Operation> Ops { get; init; }
    /// <summary>Memory each tier holds for the whole step (model states that do not move), per GPU or per node share.</summary>
    public required IReadOnlyDictionary<MemoryTier, long> StaticLevels { get; init; }
    /// <summary>The choices the program was built for (DeepSpeed's, or the bundled engine's).</summary>
    public required ProgramShape Shape { get; init; }
    /// <summary>GPUs per node and nodes, resolved once.</summary>
    public required Topology Topology { get; init; }
    /// <summary>GPUs in the data-parallel group.</summary>
    public int Gpus => Topology.Ranks;
    /// <summary>GPU processes sharing one node's CPU, drives and network.</summary>
    public int GpusPerNode => Topology.GpusPerNode;
    /// <summary>Whether this is the first step (DeepSpeed has no prefetch trace yet, so nothing is fetched ahead).</summary>
    public required bool FirstStep { get; init; }

    /// <summary>Tokens one GPU processes per step.</summary>
    public long TokensPerGpu => (long)Settings.MicroBatch * Settings.SeqLen * Settings.GradAccumulation;
}

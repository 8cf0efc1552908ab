using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Units;

namespace AiOs.Planner.Tuning;

/// <summary>What the tuner optimises.</summary>
public enum TuneObjective
{
    /// <summary>Most tokens per second among settings that fit.</summary>
    Throughput,
    /// <summary>Least GPU memory among settings that fit, then most tokens per second.</summary>
    Memory,
}

/// <summary>A tuning problem: the model, the machine, what is fixed and what to optimise.</summary>
public sealed record TuneRequest
{
    public required ModelSpec Model { get; init; }
    public required HardwareProfile Hardware { get; init; }
    public TuneObjective Objective { get; init; } = TuneObjective.Throughput;
    /// <summary>Fixed parts of every candidate (sequence length, precision, GPUs, nodes, NVMe folder).</summary>
    public TrainingSettings Base { get; init; } = new();
    /// <summary>Largest gradient accumulation tried: it sets the global batch, which is a training choice as much as a speed one.</summary>
    public int MaxGradAccumulation { get; init; } = 8;
    /// <summary>Largest micro-batch tried.</summary>
    public int MaxMicroBatch { get; init; } = 128;
    /// <summary>Candidates to evaluate at most (closed-form memory checks and simulations together).</summary>
    public int Budget { get; init; } = 10_000;
    /// <summary>Seed of the local search, so the same request gives the same answer.</summary>
    public int Seed { get; init; } = 20261127;
    public ComputeModel? ComputeModel { get; init; }
}

/// <summary>One evaluated candidate.</summary>
public sealed record Candidate
{
    public required TrainingSettings Settings { get; init; }
    public required bool Feasible { get; init; }
    /// <summary>Tokens per second across all GPUs (0 when not simulated).</summary>
    public double TokensPerSecond { get; init; }
    public SimDuration StepTime { get; init; }
    public string Bottleneck { get; init; } = "";
    public Bytes GpuPeak { get; init; }
    public Bytes HostPeak { get; init; }
    public Bytes PinnedPeak { get; init; }
    public Bytes NvmePeak { get; init; }
    public IReadOnlyList<string> Problems { get; init; } = [];
}

/// <summary>The tuner's answer: the best settings, alternatives, the throughput-versus-host-RAM front, and why.</summary>
public sealed record TuneResult
{
    public required Candidate? Best { get; init; }
    /// <summary>The next best candidates with a different structure (placement, checkpointing, schedule, micro-batch).</summary>
    public required IReadOnlyList<Candidate> Alternatives { get; init; }
    /// <summary>Feasible candidates no other beats on both tokens per second and host RAM, fastest first.</summary>
    public required IReadOnlyList<Candidate> ParetoFront { get; init; }
    public required int Evaluated { get; init; }
    public required int Simulated { get; init; }
    public required int FeasibleCount { get; init; }
    public required TimeSpan Elapsed { get; init; }
    /// <summary>
    /// The best structure with other knobs, for comparison: <c>deepspeed_defaults</c> (DeepSpeed's default
    /// knobs) and <c>nvme_tool_rule</c> (defaults, with the AIO settings DeepSpeed's NVMe tuning tool picks:
    /// the best read plus write throughput of the drive).
    /// </summary>
    public IReadOnlyDictionary<string, Candidate> Baselines { get; init; } = new Dictionary<string, Candidate>();
    /// <summary>Plain sentences: why this choice, what limits it, how much headroom each tier has.</summary>
    public required IReadOnlyList<string> Explanation { get; init; }
}

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
    /// <summary>Default of <see cref="Budget"/>: about 10 s of search on a 2-core machine (docs/benchmarks.md).</summary>
    public const int DefaultBudget = 10_000;
    /// <summary>Default of <see cref="MaxGradAccumulation"/>.</summary>
    public const int DefaultMaxGradAccumulation = 8;
    /// <summary>Default of <see cref="MaxMicroBatch"/>.</summary>
    public const int DefaultMaxMicroBatch = 128;
    /// <summary>
    /// Default of <see cref="MemoryHeadroom"/>: the memory model was measured to under-predict peaks by up to 7%
    /// (docs/memory-model.md), so the tuner keeps 5% of every tier free and warns within 10% of a limit.
    /// </summary>
    public const double DefaultMemoryHeadroom = 0.05;
    /// <summary>
    /// Default of <see cref="OptimizerRamMargin"/>: 10% of host RAM left free beyond the headroom when the tuner sizes the
    /// optimizer RAM budget, for the page cache the NVMe files still use and what the host-memory model misses.
    /// </summary>
    public const double DefaultOptimizerRamMargin = 0.10;

    public required ModelSpec Model { get; init; }
    public required HardwareProfile Hardware { get; init; }
    public TuneObjective Objective { get; init; } = TuneObjective.Throughput;
    /// <summary>Fixed parts of every candidate (sequence length, precision, GPUs, nodes, NVMe folder).</summary>
    public TrainingSettings Base { get; init; } = new();
    /// <summary>Largest gradient accumulation tried when <see cref="GlobalBatch"/> is not fixed: it sets the global batch, which is a training choice as much as a speed one.</summary>
    public int MaxGradAccumulation { get; init; } = DefaultMaxGradAccumulation;
    /// <summary>Largest micro-batch tried.</summary>
    public int MaxMicroBatch { get; init; } = DefaultMaxMicroBatch;
    /// <summary>
    /// The micro-batch, fixed (sequences per GPU per forward pass); null lets the tuner choose it up to
    /// <see cref="MaxMicroBatch"/>. Tiling (<see cref="TrainingSettings.TilingFactor"/> above 1) and checkpoints in CPU RAM
    /// (<see cref="TrainingSettings.ActivationOffload"/> cpu) given in <see cref="Base"/> are fixed the same way; left at
    /// their defaults, the tuner tries them where a candidate overflows GPU memory and the executor runs them.
    /// </summary>
    public int? MicroBatch { get; init; }
    /// <summary>Whether the user gave the tiling factor, so <see cref="Base"/>'s is kept even at 1 (no tiling); otherwise a factor above 1 alone counts as given.</summary>
    public bool TilingGiven { get; init; }
    /// <summary>Whether the user gave where checkpoints go, so <see cref="Base"/>'s is kept even at none (on the device); otherwise cpu alone counts as given.</summary>
    public bool ActivationOffloadGiven { get; init; }
    /// <summary>
    /// Sequences per optimizer step (micro-batch × accumulation × GPUs × nodes), fixed; null lets the tuner choose
    /// it (accumulation up to <see cref="MaxGradAccumulation"/>). When set, only combinations giving exactly this
    /// are tried, and <see cref="MaxGradAccumulation"/> does not apply.
    /// </summary>
    public int? GlobalBatch { get; init; }
    /// <summary>Share of every memory tier kept free (0.05 = 5%): a candidate fits only below (1 − headroom) × capacity.</summary>
    public double MemoryHeadroom { get; init; } = DefaultMemoryHeadroom;
    /// <summary>
    /// Share of host RAM kept free, beyond <see cref="MemoryHeadroom"/>, when the tuner gives an NVMe optimizer a RAM budget
    /// (what the machine allows: RAM × (1 − headroom − margin) − the rest of the host peak). Ignored when Base fixes the budget.
    /// </summary>
    public double OptimizerRamMargin { get; init; } = DefaultOptimizerRamMargin;
    /// <summary>Candidates to evaluate at most (closed-form memory checks and simulations together).</summary>
    public int Budget { get; init; } = DefaultBudget;
    /// <summary>Seed of the local search, so the same request gives the same answer.</summary>
    public int Seed { get; init; } = 20261127;
    public ComputeModel? ComputeModel { get; init; }
    /// <summary>
    /// Whether candidates that offload the optimizer may keep its state block-wise 8-bit (half the bytes in RAM and on
    /// NVMe, a slower CPU update, a small quality cost); false keeps <see cref="Base"/>'s format.
    /// </summary>
    public bool AllowEightBitOptimizer { get; init; }
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
    /// <summary>The global batch: sequences per optimizer step (micro-batch × accumulation × GPUs × nodes).</summary>
    public long SequencesPerStep { get; init; }
    /// <summary>Tokens per optimizer step: <see cref="SequencesPerStep"/> × sequence length.</summary>
    public long TokensPerStep => SequencesPerStep * Settings.SeqLen;
    /// <summary>The step's work per resource in amounts no knob changes (null when not simulated): it bounds the structure.</summary>
    internal StepWork? Work { get; init; }
    public IReadOnlyList<string> Problems { get; init; } = [];
}

/// <summary>The tuner's answer: the best settings, alternatives, the throughput-versus-host-RAM front, and why.</summary>
public sealed record TuneResult
{
    public required Candidate? Best { get; init; }
    /// <summary>
    /// The best candidate DeepSpeed can run (its own step schedule): what a <c>ds_config.json</c> must come from.
    /// The same as <see cref="Best"/> unless that one needs the aios engine's overlapped schedule.
    /// </summary>
    public Candidate? DeepSpeedBest { get; init; }
    /// <summary>The next best candidates with a different structure (placement, checkpointing, schedule, micro-batch).</summary>
    public required IReadOnlyList<Candidate> Alternatives { get; init; }
    /// <summary>Feasible candidates no other beats on both tokens per second and host RAM, fastest first.</summary>
    public required IReadOnlyList<Candidate> ParetoFront { get; init; }
    public required int Evaluated { get; init; }
    public required int Simulated { get; init; }
    public required int FeasibleCount { get; init; }
    public required TimeSpan Elapsed { get; init; }
    /// <summary>
    /// The best DeepSpeed-runnable structure with other knobs, for comparison: <c>deepspeed_defaults</c>
    /// (DeepSpeed's default knobs) and <c>nvme_tool_rule</c> (defaults, with the AIO settings DeepSpeed's NVMe
    /// tuning tool picks: the best read plus write throughput of the drive).
    /// </summary>
    public IReadOnlyDictionary<string, Candidate> Baselines { get; init; } = new Dictionary<string, Candidate>();
    /// <summary>The share of each memory tier kept free (see <see cref="TuneRequest.MemoryHeadroom"/>).</summary>
    public double MemoryHeadroom { get; init; }
    /// <summary>The global batch the user fixed (sequences per step), or null when the tuner chose it.</summary>
    public int? GlobalBatch { get; init; }
    /// <summary>Tiers the best candidate (or the DeepSpeed best) fills above 1 − 2 × headroom of capacity, in words.</summary>
    public IReadOnlyList<string> NearLimits { get; init; } = [];
    /// <summary>Why nothing was searched: the request or its fixed settings cannot run, each with the flag to change.</summary>
    public IReadOnlyList<SettingsProblem> Problems { get; init; } = [];
    /// <summary>Plain sentences: why this choice, what limits it, how much headroom each tier has.</summary>
    public required IReadOnlyList<string> Explanation { get; init; }
}

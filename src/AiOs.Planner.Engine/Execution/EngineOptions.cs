using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Optim;
using AiOs.Planner.Settings;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Execution;

/// <summary>Which gradient norm clipping limits.</summary>
public enum ClipMode
{
    /// <summary>torch.nn.utils.clip_grad_norm_ over every gradient: needs all of them first, so only the DeepSpeed schedule supports it.</summary>
    GlobalNorm,
    /// <summary>Each unit (layer, or the outer block) clipped by its own norm: what the overlapped schedule can do, since a layer is updated as soon as its gradient is complete.</summary>
    PerUnit,
}

/// <summary>Gradient clipping: scale gradients by min(1, max_norm / (norm + 1e-6)).</summary>
public sealed record GradientClipping(double MaxNorm, ClipMode Mode);

/// <summary>Which CPU AdamW implementation updates the sub-groups.</summary>
public enum OptimizerKind
{
    /// <summary>The project's vectorised multi-threaded <c>CpuAdam</c> (Core).</summary>
    CpuAdam,
    /// <summary>The engine's own <see cref="SpanAdamW"/> (torch.optim.AdamW's operation order, with a gradient multiplier built in).</summary>
    SpanAdamW,
}

/// <summary>Engine choices that <see cref="TrainingSettings"/> does not describe.</summary>
public sealed record EngineOptions
{
    public AdamWOptions Adam { get; init; } = new();
    /// <summary>The CPU Adam implementation.</summary>
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.CpuAdam;
    /// <summary>Null: no clipping.</summary>
    public GradientClipping? Clipping { get; init; }
    /// <summary>Seed of the initial weights and of the data order.</summary>
    public long Seed { get; init; } = 1234;
    /// <summary>
    /// Pretrained weights that replace the seeded initialisation: a <c>.safetensors</c> file, or a Hugging Face model folder
    /// (<c>model.safetensors</c>, or <c>model.safetensors.index.json</c> and its shards), in GPT-2 or Llama naming. Null: seeded.
    /// </summary>
    public string? InitFrom { get; init; }
    /// <summary>
    /// Names the run (and its swap folder <c>aios-&lt;id&gt;</c>): a plain name (<see cref="Runs.RunId"/>), checked here so
    /// no path such as <c>x/..</c> ever reaches the code that creates and deletes those folders.
    /// </summary>
    /// <exception cref="ArgumentException">The id is not a plain name.</exception>
    public string RunId { get; init => field = Runs.RunId.Check(value); } = Runs.RunId.New();
    /// <summary>Swap files use O_DIRECT through the direct-I/O library (the drive, not the page cache); false: buffered files.</summary>
    public bool DirectIo { get; init; } = true;
    /// <summary>Keep the NVMe swap folder after the run (for inspection).</summary>
    public bool KeepSwapFiles { get; init; }
    /// <summary>Checksum every swap piece as it is written and verify it on read (<c>--no-swap-checksums</c> turns this off).</summary>
    public bool SwapChecksums { get; init; } = true;
    /// <summary>The compute device: <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>.</summary>
    public string Device { get; init; } = "cpu";
    /// <summary>Device memory the run may use (CUDA only); the rest is taken up front so the run rehearses a smaller card. Null: the whole device.</summary>
    public Units.Bytes? GpuMemoryLimit { get; init; }
    /// <summary>On a GPU with offloaded parameters: uploads and first-micro-batch gradient downloads queue on their own CUDA streams, ordered by the step program's dependencies (events), so they overlap compute; false: copies on the default stream, each waited for by its worker.</summary>
    public bool CopyStream { get; init; } = true;
    /// <summary>fp16 only: the loss scale to start from (DeepSpeed's 2^initial_scale_power, 2^16).</summary>
    public double InitialLossScale { get; init; } = 65536;
    /// <summary>fp16 only: overflows that lower the loss scale once (DeepSpeed's hysteresis, 2; the emitted DeepSpeed config says the same).</summary>
    public int LossScaleHysteresis { get; init; } = 2;
    /// <summary>With nothing offloaded on a CUDA device, update with the fused AdamW kernel (NVRTC); false: TorchSharp operations.</summary>
    public bool FusedDeviceAdam { get; init; } = true;
    /// <summary>
    /// Tests: false runs the program built without <see cref="Simulation.Program.ProgramShape.StagedHighHalves"/> (every split master's high halves
    /// read from the parameters' files), the reference the staged copies are checked against bit for bit.
    /// </summary>
    internal bool StagedHighHalves { get; init; } = true;
}

/// <summary>Settings translated into engine terms, with unsupported combinations refused up front.</summary>
public static class EngineSettings
{
    public static ScalarType DType(Precision precision) => precision switch
    {
        Precision.Fp32 => ScalarType.Float32,
        Precision.Bf16 => ScalarType.BFloat16,
        _ => ScalarType.Float16,
    };

    /// <summary>The precision of a training-precision element type (the inverse of <see cref="DType"/>).</summary>
    /// <exception cref="NotSupportedException">Not fp32, bf16 or fp16.</exception>
    public static Precision PrecisionOf(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => Precision.Fp32,
        ScalarType.BFloat16 => Precision.Bf16,
        ScalarType.Float16 => Precision.Fp16,
        _ => throw new NotSupportedException($"The engine trains in fp32, bf16 or fp16, not {dtype}."),
    };

    /// <summary>The update <paramref name="o"/> asks for, CpuAdam's on <paramref name="threads"/> threads (default: <see cref="CpuAdamStep"/>'s).</summary>
    public static IOptimizerStep Optimizer(EngineOptions o, int? threads = null) =>
        o.Optimizer == OptimizerKind.SpanAdamW ? new SpanAdamW(o.Adam) : new CpuAdamStep(o.Adam, threads);

    /// <summary>
    /// Threads of the CPU update for <paramref name="s"/> (fp32 and 8-bit alike): <c>AIOS_CPU_ADAM_THREADS</c> when it names a
    /// positive count; else null (every core) unless the update runs beside the GPU's work (the overlapped and delayed
    /// schedules on a GPU with four cores or more): then one core fewer, left to the compute thread that launches the
    /// device's kernels. On every core, CPU Adam's threads took
    /// the launching thread's core for whole time slices: a launch-bound step beside the update (gpt2-medium, micro-batch
    /// 2, delayed, H100 VM, 2026-12-06) ran 118–129 ms with 16 threads and 106–108 ms with 15, its stalls halved, while the
    /// update, bound by memory, kept its pace (delayed gpt2-xl 375 and 372 ms; docs/validation/gpu-2026-12-06-session13.md).
    /// </summary>
    /// <remarks>
    /// The 8-bit update (bound by its arithmetic, where CPU Adam in fp32 is bound by memory) loses that core's share: about
    /// 6% of its rate on 16 cores, which the plan, pricing it at the calibrated all-core rate, does not count.
    /// </remarks>
    public static int? CpuUpdateThreads(TrainingSettings s, bool gpu) =>
        int.TryParse(Environment.GetEnvironmentVariable("AIOS_CPU_ADAM_THREADS"), out int n) && n > 0 ? n
        : gpu && s.Schedule is StepSchedule.Overlapped or StepSchedule.Delayed && Environment.ProcessorCount >= 4
            ? Environment.ProcessorCount - 1 : null;

    public static StorageTier Tier(OffloadTier tier) => tier switch
    {
        OffloadTier.None => StorageTier.Device,
        OffloadTier.Cpu => StorageTier.Cpu,
        _ => StorageTier.Nvme,
    };

    /// <summary>
    /// <paramref name="s"/> with the head the run takes (<see cref="HeadLoss.Fused"/> or <see cref="HeadLoss.Unfused"/>), by
    /// Core's rule (<see cref="Memory.EngineHeadLoss.Resolve"/>) on the hardware the run's capacity check plans
    /// (<see cref="Runs.RunCapacity.ThisMachine"/>: on CUDA the profile's GPU held to <see cref="EngineOptions.GpuMemoryLimit"/>),
    /// so the prediction, the capacity check and the engine price and run one head. On a CPU, or on CUDA with neither a
    /// profile that describes the GPU nor a limit, no device budget is known: the fused head where it lowers the bytes.
    /// <c>aios train</c> calls it once, before the capacity check; the trainers run <c>settings.HeadLoss</c>.
    /// </summary>
    public static TrainingSettings ResolveHeadLoss(Models.ModelSpec spec, TrainingSettings s, EngineOptions o, Hardware.HardwareProfile? profile)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(s);
        ArgumentNullException.ThrowIfNull(o);
        bool cuda = o.Device.StartsWith("cuda", StringComparison.Ordinal);
        bool budgetKnown = cuda && (profile?.Gpu is not null || o.GpuMemoryLimit is not null);
        var machine = Runs.RunCapacity.ThisMachine(profile, o, s, new Runs.LocalResources(null, null));
        var perRank = s with { Nodes = 1, GpusPerNode = 1 };
        HeadLoss head = budgetKnown ? Memory.EngineHeadLoss.Resolve(spec, machine, perRank) : Memory.EngineHeadLoss.Choose(spec, machine, perRank, deviceBudget: null);
        return s with { HeadLoss = head };
    }

    /// <summary>
    /// Throws one message naming each setting the engine cannot honour, including host memory the
    /// model states and buffers would need beyond <paramref name="hostAvailable"/> (default: MemAvailable).
    /// </summary>
    public static void Check(Models.ModelSpec spec, TrainingSettings s, EngineOptions o, Units.Bytes? hostAvailable = null)
    {
        var problems = new List<string>();
        // The schedules this engine cannot run: the planner's rule too (SettingsRules.Check, the tuner), so no plan calls them feasible.
        problems.AddRange(EngineScheduleRule.Problems(s, (s.GpusPerNode ?? 1) * (s.Nodes ?? 1)));
        // Ranges, choices, alignment and the learned-position limit: the validator every command shares; the rest is the engine's own.
        problems.AddRange(SettingsValidator.Problems(s, spec).Select(p => p.ToString()));
        // Stricter than the planner's rule: the engine sizes its rotary tables to max_seq_len too.
        if (s.SeqLen > spec.MaxSeqLen && spec.Positions != Models.PositionKind.Learned) problems.Add($"seq_len {s.SeqLen} exceeds the model's max_seq_len {spec.MaxSeqLen}");
        if (spec.SlidingWindow is { } window && s.SeqLen > window)
            problems.Add($"seq_len {s.SeqLen} exceeds {spec.Name}'s sliding_window {window}: the engine computes full attention; use --seq-len {window} or less");
        if (s.UsesNvme && string.IsNullOrWhiteSpace(s.NvmePath)) problems.Add("NVMe offload needs nvme_path");
        if (DataParallel.OverlappedProblem(s, o.Clipping, s.GpusPerNode ?? 1) is { } ranks) problems.Add(ranks);
        if (s.Schedule == StepSchedule.Overlapped && o.Clipping?.Mode == ClipMode.GlobalNorm)
            problems.Add("global-norm clipping needs every gradient before any update, which the overlapped schedule does not wait for; use per-layer clipping or the DeepSpeed schedule");
        // The planner's rule for the aios executor (what this engine runs), so a plan never calls feasible what this refuses.
        if (global::AiOs.Planner.Memory.SwapBufferRule.Problem(spec, s, ExecutorKind.Aios) is { } buffer) problems.Add(buffer.Message);
        // Tiling, and CPU checkpoints on the resident trainer: the same refusal `aios train` gives before it builds a trainer.
        if (global::AiOs.Planner.Memory.MemoryCentricTiling.EngineRefusal(s) is { } refused) problems.Add(refused.TrimEnd('.'));
        if (o.Device != "cpu" && !o.Device.StartsWith("cuda", StringComparison.Ordinal)) problems.Add($"device '{o.Device}' is unknown (cpu, cuda or cuda:N)");
        if (CudaGraphRule.Problem(s) is { } graphs) problems.Add(graphs);
        else if (s.CudaGraphs && !o.Device.StartsWith("cuda", StringComparison.Ordinal))
            problems.Add($"--cuda-graphs captures CUDA work and the device is '{o.Device}': use --device cuda, or drop --cuda-graphs");
        if (problems.Count == 0 && (hostAvailable ?? HostMemoryEstimate.Available()) is { } available)
        {
            bool gpu = o.Device.StartsWith("cuda", StringComparison.Ordinal);
            // The ranks of --gpus N share this host's RAM.
            Units.Bytes need = HostMemoryEstimate.AllRanks(spec, s, gpu);
            if (need > available)
            {
                HostMemoryItem biggest = HostMemoryEstimate.Items(spec, s, gpu)[0];
                problems.Add($"model states and buffers need {need} of host RAM but {available} is available; the largest part is {biggest.What} ({biggest.Size}): change {biggest.Remedy}");
            }
        }
        if (problems.Count > 0) throw new ArgumentException("The engine cannot run these settings: " + string.Join("; ", problems) + ".");
    }
}

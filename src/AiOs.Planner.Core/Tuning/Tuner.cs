using System.Collections.Concurrent;
using System.Diagnostics;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Units;

namespace AiOs.Planner.Tuning;

/// <summary>
/// Searches the settings with the simulator. First the structure — where parameters and optimizer states
/// live, ZeRO stage, checkpointing, micro-batch, accumulation, schedule — pruned by the closed-form memory
/// model (memory only grows with micro-batch, so the search stops at the first that does not fit); then,
/// for the best structures, the knobs — AIO block size, queue depth and threads within the calibrated
/// range, swap buffers, prefetch depth, sub-group size, pipelined swapping — by coordinate descent and a
/// seeded local search until the budget is spent.
/// </summary>
public static partial class Tuner
{
    /// <summary>Structures refined in the second stage.</summary>
    public const int Refined = 6;

    public static TuneResult Tune(TuneRequest request)
    {
        var watch = Stopwatch.StartNew();
        var evaluator = new Evaluator(request);

        var structures = Structures(request).ToList();
        var evaluated = evaluator.EvaluateAll(structures, stopMicroBatchAtFirstMiss: true);
        var ranked = Rank(evaluated.Where(c => c.Feasible), request.Objective).ToList();

        var seeds = ranked.DistinctBy(StructureKey).Take(Refined).ToList();
        var random = new Random(request.Seed);
        var knobs = new KnobSpace(request);
        foreach (var seed in seeds)
        {
            if (evaluator.Count >= request.Budget) break;
            var best = CoordinateDescent(seed, knobs, evaluator, request);
            LocalSearch(best, knobs, evaluator, request, random, request.Budget * (seeds.IndexOf(seed) + 1) / Math.Max(1, seeds.Count));
        }
        // What budget is left explores: random knobs on every structure that fits, in case a structure the
        // first stage ranked low tunes better than the ones refined.
        Explore(ranked.DistinctBy(StructureKey).ToList(), knobs, evaluator, request, random);

        var all = evaluator.All.ToList();
        var feasible = Rank(all.Where(c => c.Feasible), request.Objective).ToList();
        var bestOverall = feasible.FirstOrDefault();
        var alternatives = bestOverall is null ? [] : feasible.DistinctBy(StructureKey).Where(c => StructureKey(c) != StructureKey(bestOverall)).Take(4).ToList();
        var defaults = bestOverall is null ? null : evaluator.Evaluate(WithDefaultKnobs(bestOverall.Settings));
        var nvmeRule = bestOverall is null || !bestOverall.Settings.UsesNvme ? null
            : evaluator.Evaluate(WithDefaultKnobs(bestOverall.Settings) with { Aio = NvmeToolRule(request, knobs) });
        var baselines = new Dictionary<string, Candidate>();
        if (defaults is not null) baselines["deepspeed_defaults"] = defaults;
        if (nvmeRule is not null) baselines["nvme_tool_rule"] = nvmeRule;
        watch.Stop();
        return new TuneResult
        {
            Best = bestOverall,
            Alternatives = alternatives,
            ParetoFront = Pareto(feasible),
            Evaluated = evaluator.Count,
            Simulated = evaluator.Simulated,
            FeasibleCount = feasible.Count,
            Elapsed = watch.Elapsed,
            Baselines = baselines,
            Explanation = Explain(request, bestOverall, alternatives, defaults, all.Count, evaluator.Simulated, feasible.Count, watch.Elapsed),
        };
    }

    /// <summary>
    /// The best candidate that <paramref name="accepts"/> takes (e.g. what an engine can run), from the best,
    /// its alternatives, then the Pareto front; null when none.
    /// </summary>
    public static Candidate? FirstAccepted(TuneResult result, Func<TrainingSettings, bool> accepts) =>
        new[] { result.Best }.Concat(result.Alternatives).Concat(result.ParetoFront)
            .FirstOrDefault(c => c is not null && accepts(c.Settings));

    /// <summary>Best first: fastest, or for the memory objective smallest GPU peak and then fastest.</summary>
    private static IOrderedEnumerable<Candidate> Rank(IEnumerable<Candidate> candidates, TuneObjective objective) =>
        objective == TuneObjective.Memory
            ? candidates.OrderBy(c => c.GpuPeak.Value).ThenByDescending(c => c.TokensPerSecond).ThenBy(c => c.HostPeak.Value).ThenBy(Identity, StringComparer.Ordinal)
            : candidates.OrderByDescending(c => c.TokensPerSecond).ThenBy(c => c.HostPeak.Value).ThenBy(c => c.GpuPeak.Value).ThenBy(Identity, StringComparer.Ordinal);

    /// <summary>A total order for ties, so parallel evaluation never changes the answer.</summary>
    private static string Identity(Candidate c) => c.Settings.ToString();

    /// <summary>Placement, stage, checkpointing, schedule and micro-batch: what makes two candidates different in kind.</summary>
    internal static string StructureKey(Candidate c)
    {
        var s = c.Settings;
        return $"{s.ZeroStage}/{s.ParamOffload}/{s.OptimizerOffload}/{s.ActivationCheckpointing}/{s.Schedule}/{s.MicroBatch}x{s.GradAccumulation}";
    }

    /// <summary>Feasible candidates that no other beats on both tokens per second and host RAM.</summary>
    private static List<Candidate> Pareto(IEnumerable<Candidate> feasible)
    {
        var front = new List<Candidate>();
        double best = -1;
        foreach (var c in feasible.OrderBy(c => c.HostPeak.Value).ThenByDescending(c => c.TokensPerSecond))
        {
            // A point joins the front only when it is measurably (0.5%) faster than every point using less RAM.
            if (c.TokensPerSecond <= best * 1.005) continue;
            front.Add(c);
            best = c.TokensPerSecond;
        }
        front.Reverse();
        return front;
    }

    /// <summary>
    /// DeepSpeed's NVMe tuning tool (<c>ds_nvme_tune</c>) sweeps block size, queue depth and threads and keeps
    /// the setting with the best read plus write throughput; this applies the same rule to the drive curves.
    /// </summary>
    private static AioSettings NvmeToolRule(TuneRequest r, KnobSpace space)
    {
        var best = new AioSettings();
        double bestRate = -1;
        foreach (long block in space.BlockSizes)
            foreach (int depth in space.QueueDepths)
                foreach (int threads in space.Threads)
                {
                    var aio = new AioSettings { BlockSize = new Units.Bytes(block), QueueDepth = depth, IntraOpParallelism = threads };
                    double rate = r.Hardware.Drives.Sum(d => d.ReadRate(aio).BytesPerSecond + d.WriteRate(aio).BytesPerSecond);
                    if (rate > bestRate * (1 + 1e-9))
                    {
                        bestRate = rate;
                        best = aio;
                    }
                }
        return best;
    }

    private static TrainingSettings WithDefaultKnobs(TrainingSettings s)
    {
        var d = new TrainingSettings();
        return s with
        {
            Aio = d.Aio, BufferCount = d.BufferCount, BufferSize = Math.Max(d.BufferSize, s.BufferSize), OptimizerBufferCount = d.OptimizerBufferCount,
            SubGroupSize = d.SubGroupSize, PipelineRead = d.PipelineRead, PipelineWrite = d.PipelineWrite, PrefetchDepth = d.PrefetchDepth,
        };
    }

    /// <summary>Evaluates candidates in parallel, each once: the closed-form plan first, the simulation only when it fits.</summary>
    internal sealed class Evaluator
    {
        private readonly TuneRequest _request;
        private readonly ConcurrentDictionary<TrainingSettings, Candidate> _seen = new();
        private int _simulated;

        public Evaluator(TuneRequest request) => _request = request;

        public int Count => _seen.Count;
        public int Simulated => _simulated;
        public IEnumerable<Candidate> All => _seen.Values;

        public Candidate Evaluate(TrainingSettings s) => _seen.GetOrAdd(s, Compute);

        /// <summary>
        /// Evaluates groups that differ only in micro-batch in ascending order and, when asked, stops a group at
        /// its first micro-batch that does not fit (memory never shrinks as the micro-batch grows).
        /// </summary>
        public List<Candidate> EvaluateAll(IReadOnlyList<TrainingSettings> settings, bool stopMicroBatchAtFirstMiss)
        {
            var groups = settings.GroupBy(s => s with { MicroBatch = 1 }).Select(g => g.OrderBy(s => s.MicroBatch).ToList()).ToList();
            var results = new ConcurrentBag<Candidate>();
            Parallel.ForEach(groups, group =>
            {
                // Structures are always evaluated in full (the budget bounds the knob search), so that the
                // candidates seen never depend on which thread got there first.
                foreach (var s in group)
                {
                    var c = Evaluate(s);
                    results.Add(c);
                    if (stopMicroBatchAtFirstMiss && !c.Feasible && c.Problems.All(p => !p.StartsWith("settings:", StringComparison.Ordinal))) break;
                }
            });
            return results.ToList();
        }

        private Candidate Compute(TrainingSettings s)
        {
            var plan = TrainingPlanner.Plan(_request.Model, _request.Hardware, s, new PlanOptions { Simulate = false });
            var candidate = new Candidate
            {
                Settings = s,
                Feasible = plan.Feasible,
                GpuPeak = plan.Memory.Gpu.Peak,
                HostPeak = plan.Memory.CpuPeak,
                PinnedPeak = plan.Memory.CpuPinned.Peak,
                NvmePeak = plan.Memory.Nvme.Peak,
                Problems = plan.SettingsProblems.Select(p => "settings: " + p).Concat(plan.CapacityProblems).ToList(),
            };
            if (!plan.Feasible) return candidate;
            Interlocked.Increment(ref _simulated);
            var step = Simulator.PredictTime(_request.Model, _request.Hardware, s, _request.ComputeModel);
            return candidate with
            {
                TokensPerSecond = step.TokensPerSecond,
                StepTime = step.Time,
                Bottleneck = ResourceNames.Of(step.Bottleneck, _request.Hardware.HasGpu),
            };
        }
    }
}

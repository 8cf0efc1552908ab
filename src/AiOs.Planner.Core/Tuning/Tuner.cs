using System.Collections.Concurrent;
using System.Diagnostics;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
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

    /// <summary>Tunes <paramref name="request"/> to the end of its budget.</summary>
    public static TuneResult Tune(TuneRequest request) => Tune(request, null, CancellationToken.None);

    /// <summary>
    /// Tunes <paramref name="request"/>, calling <paramref name="progress"/> after every batch of candidates, within the
    /// long structure batch every 200 ms or so (then from a worker thread, one call at a time but not always the tuning
    /// thread), and once at the end with the final count. <paramref name="cancellation"/> is checked between batches:
    /// a cancelled tune throws <see cref="OperationCanceledException"/> (a cut-short search has no answer worth
    /// returning). Neither changes which candidates are evaluated, so the result is the same as without them.
    /// </summary>
    public static TuneResult Tune(TuneRequest request, Action<TuneProgress>? progress, CancellationToken cancellation)
    {
        var watch = Stopwatch.StartNew();
        cancellation.ThrowIfCancellationRequested();
        var problems = TuneRequestRules.Check(request);
        if (problems.Count > 0) return Refused(request, problems, watch);
        var evaluator = new Evaluator(request, progress, cancellation);

        var structures = Structures(request).ToList();
        var evaluated = evaluator.EvaluateAll(structures, stopMicroBatchAtFirstMiss: true);
        evaluator.BatchDone();
        var distinct = Rank(evaluated.Where(c => c.Feasible), request.Objective).DistinctBy(StructureKey).ToList();

        // The best structures, and the best that DeepSpeed can run (a ds_config.json comes from those), get their knobs tuned.
        var seeds = distinct.Take(Refined).Concat(distinct.Where(c => RunsOnDeepSpeed(c.Settings)).Take(Refined / 2)).Distinct().ToList();
        var random = new Random(request.Seed);
        var knobs = evaluator.Knobs;
        for (int i = 0; i < seeds.Count; i++)
        {
            if (evaluator.Count >= request.Budget) break;
            if (!evaluator.CanBeat(seeds[i])) continue;
            var best = CoordinateDescent(seeds[i], knobs, evaluator, request);
            LocalSearch(best, knobs, evaluator, request, random, request.Budget * (i + 1) / seeds.Count);
        }
        // What budget is left explores: random knobs on every structure that fits and could still win, in case a
        // structure the first stage ranked low tunes better than the ones refined.
        Explore(distinct, knobs, evaluator, request, random);

        var all = evaluator.All.ToList();
        var feasible = Rank(all.Where(c => c.Feasible), request.Objective).ToList();
        var bestOverall = WithoutMarginalGraphs(feasible.FirstOrDefault(), feasible);
        var deepSpeedBest = feasible.FirstOrDefault(c => RunsOnDeepSpeed(c.Settings));
        var alternatives = bestOverall is null ? [] : feasible.DistinctBy(StructureKey).Where(c => StructureKey(c) != StructureKey(bestOverall)).Take(4).ToList();
        var defaults = deepSpeedBest is null ? null : evaluator.Evaluate(WithDefaultKnobs(deepSpeedBest.Settings));
        var nvmeRule = deepSpeedBest is null || !deepSpeedBest.Settings.UsesNvme ? null
            : evaluator.Evaluate(WithDefaultKnobs(deepSpeedBest.Settings) with { Aio = NvmeToolRule(request, knobs) });
        var baselines = new Dictionary<string, Candidate>();
        if (defaults is not null) baselines["deepspeed_defaults"] = defaults;
        if (nvmeRule is not null) baselines["nvme_tool_rule"] = nvmeRule;
        evaluator.Report();
        var nearLimits = new List<string>();
        if (bestOverall is not null) nearLimits.AddRange(NearLimits("The best plan", bestOverall, request.Hardware, request.MemoryHeadroom));
        if (deepSpeedBest is not null && deepSpeedBest != bestOverall)
            nearLimits.AddRange(NearLimits("The DeepSpeed plan", deepSpeedBest, request.Hardware, request.MemoryHeadroom));
        watch.Stop();
        var result = new TuneResult
        {
            Best = bestOverall,
            DeepSpeedBest = deepSpeedBest,
            Alternatives = alternatives,
            ParetoFront = Pareto(feasible),
            Evaluated = evaluator.Count,
            Simulated = evaluator.Simulated,
            FeasibleCount = feasible.Count,
            Elapsed = watch.Elapsed,
            Baselines = baselines,
            MemoryHeadroom = request.MemoryHeadroom,
            GlobalBatch = request.GlobalBatch,
            NearLimits = nearLimits,
            Explanation = [],
        };
        return result with { Explanation = Explain(request, result) };
    }

    /// <summary>The answer when the request itself cannot run: nothing searched, every problem with its flag.</summary>
    private static TuneResult Refused(TuneRequest request, IReadOnlyList<SettingsProblem> problems, Stopwatch watch) => new()
    {
        Best = null,
        Alternatives = [],
        ParetoFront = [],
        Evaluated = 0,
        Simulated = 0,
        FeasibleCount = 0,
        Elapsed = watch.Elapsed,
        MemoryHeadroom = request.MemoryHeadroom,
        GlobalBatch = request.GlobalBatch,
        Problems = problems,
        Explanation = [$"Nothing was tuned: the request cannot run whatever the tuner picks. {string.Join("; ", problems)}."],
    };

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

    /// <summary>
    /// <paramref name="best"/>, unless it replays CUDA graphs and its structure without them is within
    /// <see cref="TrainingPlanner.CudaGraphsNoteGain"/> of it: then that one, the graphs' memory and newer path not being worth
    /// less than that (the threshold at which the plan suggests them).
    /// </summary>
    private static Candidate? WithoutMarginalGraphs(Candidate? best, IReadOnlyList<Candidate> ranked)
    {
        if (best is not { Settings.CudaGraphs: true }) return best;
        string plain = StructureKey(best.Settings with { CudaGraphs = false });
        return ranked.FirstOrDefault(c => StructureKey(c) == plain) is { } twin
            && twin.TokensPerSecond >= best.TokensPerSecond * (1 - TrainingPlanner.CudaGraphsNoteGain) ? twin : best;
    }

    /// <summary>A total order for ties, so parallel evaluation never changes the answer.</summary>
    private static string Identity(Candidate c) => c.Settings.ToString();

    /// <summary>Placement, stage, checkpointing (and where checkpoints go), tiling, schedule, micro-batch and CUDA graphs: what makes two candidates different in kind.</summary>
    internal static string StructureKey(Candidate c) => StructureKey(c.Settings);

    private static string StructureKey(TrainingSettings s)
    {
        return $"{s.ZeroStage}/{s.ParamOffload}/{s.OptimizerOffload}/{s.OptimizerState}/{s.ActivationCheckpointing}/{s.ActivationOffload}/T{s.TilingFactor}/{s.Schedule}/{s.MicroBatch}x{s.GradAccumulation}/G{s.CudaGraphs}";
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
    internal sealed partial class Evaluator
    {
        private readonly TuneRequest _request;
        private readonly ConcurrentDictionary<TrainingSettings, Candidate> _seen = new();
        private int _simulated;
        // Best tokens/s seen so far, overall and among DeepSpeed-runnable candidates; read between batches only,
        // when every candidate of the batch is in, so the search never depends on thread timing.
        private double _best, _bestDeepSpeed;

        private readonly KnobSpace _knobs;
        private readonly Action<TuneProgress>? _progress;
        private readonly CancellationToken _cancellation;

        public Evaluator(TuneRequest request, Action<TuneProgress>? progress = null, CancellationToken cancellation = default)
        {
            _request = request;
            _knobs = new KnobSpace(request);
            _progress = progress;
            _cancellation = cancellation;
        }

        /// <summary>
        /// Called by the search after each batch, when every candidate of the batch is in: stops a cancelled tune, then
        /// reports progress. Only ever between batches, so cancelling never leaves a half-evaluated batch behind.
        /// </summary>
        public void BatchDone()
        {
            _cancellation.ThrowIfCancellationRequested();
            Report();
        }

        /// <summary>Reports the count and best so far to the progress callback, if any.</summary>
        public void Report() => _progress?.Invoke(new TuneProgress(Count, _request.Budget, Bests.Overall));

        /// <summary>The values each knob may take for this request.</summary>
        public KnobSpace Knobs => _knobs;

        /// <summary>
        /// The batches' workers: one per core, so the thread pool stays free for the caller (the server's progress
        /// stream runs on it; an unbounded loop took every thread the pool added and starved it on a loaded 2-core box).
        /// </summary>
        public ParallelOptions Workers { get; } = new() { MaxDegreeOfParallelism = Environment.ProcessorCount };

        public int Count => _seen.Count;
        /// <summary>The best tokens/s seen, overall and among DeepSpeed-runnable candidates (read between batches).</summary>
        public (double Overall, double DeepSpeed) Bests => (Volatile.Read(ref _best), Volatile.Read(ref _bestDeepSpeed));
        public int Simulated => _simulated;
        public IEnumerable<Candidate> All => _seen.Values;

        /// <remarks>An optimizer RAM budget the tuner chose is first cut to what RAM allows for these settings (<see cref="WithinAllowance"/>).</remarks>
        public Candidate Evaluate(TrainingSettings s) => _seen.GetOrAdd(WithinAllowance(_request, s), Compute);

        /// <summary>
        /// Whether some knob setting of <paramref name="c"/>'s structure could still be faster than the best seen (for
        /// a DeepSpeed-runnable one: the best DeepSpeed-runnable seen), by <see cref="Bound"/>. The memory objective
        /// prunes nothing.
        /// </summary>
        public bool CanBeat(Candidate c)
        {
            if (_request.Objective != TuneObjective.Throughput) return true;
            if (!c.Feasible || c.Work is null) return false;
            return Bound(c) > Volatile.Read(ref RunsOnDeepSpeed(c.Settings) ? ref _bestDeepSpeed : ref _best);
        }

        /// <summary>
        /// Evaluates groups that differ only in micro-batch in ascending order and, when asked, stops a group at
        /// its first micro-batch that does not fit (memory never shrinks as the micro-batch grows).
        /// </summary>
        public List<Candidate> EvaluateAll(IReadOnlyList<TrainingSettings> settings, bool stopMicroBatchAtFirstMiss)
        {
            var groups = settings.GroupBy(s => s with { MicroBatch = 1 }).Select(g => g.OrderBy(s => s.MicroBatch).ToList()).ToList();
            var results = new ConcurrentBag<Candidate>();
            // The structure stage is one large batch: the token also stops it between groups, and progress is reported
            // between groups at most every 200 ms (a search of many structures otherwise showed 0 evaluated until it ended).
            // One worker per core leaves the thread pool free for the caller (the server's progress stream runs on it).
            var options = new ParallelOptions { CancellationToken = _cancellation, MaxDegreeOfParallelism = Environment.ProcessorCount };
            Parallel.ForEach(groups, options, group =>
            {
                // Structures are always evaluated in full (the budget bounds the knob search), so that the
                // candidates seen never depend on which thread got there first.
                foreach (var s in group)
                {
                    var c = Evaluate(s);
                    results.Add(c);
                    if (!stopMicroBatchAtFirstMiss || c.Feasible || c.Problems.Any(p => p.StartsWith("settings:", StringComparison.Ordinal))) continue;
                    // A miss on GPU memory may fit with checkpoints in CPU RAM or tiling: the group goes on while one does.
                    var fallbacks = Fallbacks(c);
                    foreach (var f in fallbacks) results.Add(f);
                    if (!fallbacks.Any(f => f.Feasible)) break;
                }
                ReportIfDue();
            });
            return results.ToList();
        }

        /// <summary>Ticks of the last progress report from within a batch.</summary>
        private long _lastReport = Stopwatch.GetTimestamp();

        /// <summary>Reports progress if 200 ms have passed since the last report from within a batch (any thread).</summary>
        private void ReportIfDue()
        {
            long last = Volatile.Read(ref _lastReport), now = Stopwatch.GetTimestamp();
            if (Stopwatch.GetElapsedTime(last, now) < TimeSpan.FromMilliseconds(200)) return;
            if (Interlocked.CompareExchange(ref _lastReport, now, last) == last) Report();
        }

        private Candidate Compute(TrainingSettings s)
        {
            var hw = _request.Hardware;
            var plan = TrainingPlanner.Plan(_request.Model, hw, s, new PlanOptions { Simulate = false });
            var candidate = new Candidate
            {
                Settings = s,
                Feasible = plan.Feasible,
                GpuPeak = plan.Memory.Gpu.Peak,
                HostPeak = plan.Memory.CpuPeak,
                PinnedPeak = plan.Memory.CpuPinned.Peak,
                NvmePeak = plan.Memory.Nvme.Peak,
                SequencesPerStep = (long)s.MicroBatch * s.GradAccumulation * World(s, hw),
                Problems = plan.SettingsProblems.Select(p => "settings: " + p).Concat(plan.CapacityProblems).ToList(),
            };
            if (!plan.Feasible) return candidate;
            var tight = HeadroomProblems(candidate, hw, _request.MemoryHeadroom);
            if (tight.Count > 0) return candidate with { Feasible = false, Problems = tight };
            Interlocked.Increment(ref _simulated);
            // Simulator.PredictTime, plus the work per resource that bounds every knob setting of this structure.
            var program = StepScheduler.Build(_request.Model, hw, s, false, ProgramShape.For(s, hw));
            var costs = Simulator.Costs(program, hw, s, _request.ComputeModel);
            var step = StepTimes.Compute(program, costs);
            RaiseTo(ref _best, step.TokensPerSecond);
            if (RunsOnDeepSpeed(s)) RaiseTo(ref _bestDeepSpeed, step.TokensPerSecond);
            return candidate with
            {
                TokensPerSecond = step.TokensPerSecond,
                StepTime = step.Time,
                Work = StepWork.Of(program, costs),
                Bottleneck = ResourceNames.Of(step.Bottleneck, hw.HasGpu),
            };
        }

        private static void RaiseTo(ref double target, double value)
        {
            double current = Volatile.Read(ref target);
            while (value > current)
            {
                double seen = Interlocked.CompareExchange(ref target, value, current);
                if (seen == current) return;
                current = seen;
            }
        }
    }
}

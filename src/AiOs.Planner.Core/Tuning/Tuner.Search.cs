using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Tuning;

/// <summary>The knob search: coordinate descent, local search and exploration around the structures that fit.</summary>
public static partial class Tuner
{
    private static long RoundUp(long value, long step) => (value + step - 1) / step * step;

    private static readonly long[] BlockSizes = [128 << 10, 256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20, 8 << 20];
    private static readonly int[] QueueDepths = [1, 2, 4, 8, 16, 32, 64];
    private static readonly int[] Threads = [1, 2, 4, 8];
    private static readonly int[] BufferCounts = [4, 5, 8, 12, 16, 24];
    private static readonly int[] PrefetchDepths = [0, 1, 2, 3];
    private static readonly long[] SubGroups = [50_000_000, 100_000_000, 200_000_000, 500_000_000, 1_000_000_000];
    private static readonly bool[] Flags = [false, true];

    /// <summary>The values each knob may take; AIO values stay within what calibration measured, when it did.</summary>
    internal sealed class KnobSpace
    {
        public KnobSpace(TuneRequest r)
        {
            var samples = r.Hardware.Drives.SelectMany(d => (d.Read.Samples ?? []).Concat(d.Write.Samples ?? [])).ToList();
            long[] blocks = Tuner.BlockSizes;
            int[] depths = Tuner.QueueDepths, threads = Tuner.Threads;
            if (samples.Count > 0)
            {
                blocks = [.. blocks.Where(v => v >= samples.Min(s => s.BlockSize) && v <= samples.Max(s => s.BlockSize)).DefaultIfEmpty(1 << 20)];
                depths = [.. depths.Where(v => v >= samples.Min(s => s.QueueDepth) && v <= samples.Max(s => s.QueueDepth)).DefaultIfEmpty(8)];
                threads = [.. threads.Where(v => v >= samples.Min(s => s.Threads) && v <= samples.Max(s => s.Threads)).DefaultIfEmpty(1)];
            }
            BlockSizes = blocks;
            QueueDepths = depths;
            Threads = threads;
            long buffer = RoundUp(Memory.SwapBufferRule.Default(r.Model, r.Base.Executor), 10_000_000);
            Knobs =
            [
                Knob.Of("aio block size", s => s.UsesNvme, blocks, (s, v) => s with { Aio = s.Aio with { BlockSize = new Bytes(v) } }),
                Knob.Of("aio queue depth", s => s.UsesNvme, depths, (s, v) => s with { Aio = s.Aio with { QueueDepth = v } }),
                Knob.Of("aio threads", s => s.UsesNvme, threads, (s, v) => s with { Aio = s.Aio with { IntraOpParallelism = v } }),
                Knob.Of("buffer count", s => s.ParamOffload == OffloadTier.Nvme, BufferCounts, (s, v) => s with { BufferCount = v }),
                Knob.Of("buffer size", s => s.ParamOffload == OffloadTier.Nvme, [buffer, buffer * 2], (s, v) => s with { BufferSize = v }),
                Knob.Of("prefetch depth", s => s.PartitionsParameters, PrefetchDepths, (s, v) => s with { PrefetchDepth = v }),
                Knob.Of("sub-group size", s => s.OptimizerOffload != OffloadTier.None, SubGroups, (s, v) => s with { SubGroupSize = v }),
                Knob.Of("pipelined read", s => s.OptimizerOffload == OffloadTier.Nvme, Flags, (s, v) => s with { PipelineRead = v }),
                Knob.Of("pipelined write", s => s.OptimizerOffload == OffloadTier.Nvme, Flags, (s, v) => s with { PipelineWrite = v }),
                Knob.Of("pin memory", s => s.ParamOffload == OffloadTier.Cpu || s.OptimizerOffload == OffloadTier.Cpu, Flags, (s, v) => s with { PinMemory = v }),
                OptimizerBudgetKnob(r),
            ];
        }

        public IReadOnlyList<Knob> Knobs { get; }
        public long[] BlockSizes { get; }
        public int[] QueueDepths { get; }
        public int[] Threads { get; }
    }

    /// <summary>One setting the tuner varies: its values as functions that set it, and when it matters.</summary>
    internal sealed record Knob(string Name, Func<TrainingSettings, bool> Applies, Func<TrainingSettings, TrainingSettings>[] Values)
    {
        public static Knob Of<T>(string name, Func<TrainingSettings, bool> applies, T[] values, Func<TrainingSettings, T, TrainingSettings> set) =>
            new(name, applies, values.Select(v => (Func<TrainingSettings, TrainingSettings>)(s => set(s, v))).ToArray());
    }

    /// <summary>Two rounds of trying every value of every knob that applies, keeping the best each time.</summary>
    private static Candidate CoordinateDescent(Candidate start, KnobSpace space, Evaluator evaluator, TuneRequest r)
    {
        var best = start;
        for (int round = 0; round < 2; round++)
        {
            foreach (var knob in space.Knobs)
            {
                if (!knob.Applies(best.Settings)) continue;
                var trials = knob.Values.Select(set => set(best.Settings)).ToList();
                var results = new Candidate[trials.Count];
                Parallel.For(0, trials.Count, evaluator.Workers, i => results[i] = evaluator.Evaluate(trials[i]));
                evaluator.BatchDone();
                foreach (var c in results)
                    if (c.Feasible && Better(c, best, r.Objective)) best = c;
                if (evaluator.Count >= r.Budget) return best;
            }
        }
        return best;
    }

    /// <summary>Seeded random moves of one to three knobs from the best so far, until <paramref name="until"/> candidates.</summary>
    private static void LocalSearch(Candidate start, KnobSpace space, Evaluator evaluator, TuneRequest r, Random random, int until)
    {
        var best = start;
        var applicable = space.Knobs.Where(k => k.Applies(start.Settings)).ToList();
        if (applicable.Count == 0) return;
        const int batch = 64;
        int stale = 0;
        while (evaluator.Count < Math.Min(until, r.Budget) && stale < 50)
        {
            var trials = new TrainingSettings[batch];
            for (int i = 0; i < batch; i++)
            {
                var s = best.Settings;
                int moves = 1 + random.Next(3);
                for (int m = 0; m < moves; m++)
                {
                    var knob = applicable[random.Next(applicable.Count)];
                    s = knob.Values[random.Next(knob.Values.Length)](s);
                }
                trials[i] = s;
            }
            int before = evaluator.Count;
            var results = new Candidate[batch];
            Parallel.For(0, batch, evaluator.Workers, i => results[i] = evaluator.Evaluate(trials[i]));
            evaluator.BatchDone();
            bool improved = false;
            foreach (var c in results)
                if (c.Feasible && Better(c, best, r.Objective))
                {
                    best = c;
                    improved = true;
                }
            stale = improved || evaluator.Count > before ? (improved ? 0 : stale + 1) : stale + 5;
        }
    }

    /// <summary>Exploration (throughput objective) stops after this many batches in a row improve neither the best nor the DeepSpeed best.</summary>
    private const int StaleExploreBatches = 10;

    /// <summary>
    /// Random knob settings on random structures that fit and could still beat the best (see
    /// <see cref="Evaluator.CanBeat"/>), until the budget is spent, no structure can win, nothing new turns up, or
    /// <see cref="StaleExploreBatches"/> batches in a row improve nothing.
    /// </summary>
    private static void Explore(List<Candidate> structures, KnobSpace space, Evaluator evaluator, TuneRequest r, Random random)
    {
        const int batch = 128;
        int fruitless = 0, stale = 0;
        while (evaluator.Count < r.Budget && fruitless < 10 && stale < StaleExploreBatches)
        {
            // Only structures with a knob to turn can give new candidates.
            var open = structures.Where(c => space.Knobs.Any(k => k.Applies(c.Settings)) && evaluator.CanBeat(c)).ToList();
            if (open.Count == 0) return;
            var trials = new TrainingSettings[batch];
            for (int i = 0; i < batch; i++)
            {
                var s = open[random.Next(open.Count)].Settings;
                foreach (var knob in space.Knobs)
                    if (knob.Applies(s)) s = knob.Values[random.Next(knob.Values.Length)](s);
                trials[i] = s;
            }
            int before = evaluator.Count;
            var bests = evaluator.Bests;
            Parallel.For(0, batch, evaluator.Workers, i => evaluator.Evaluate(trials[i]));
            evaluator.BatchDone();
            fruitless = evaluator.Count == before ? fruitless + 1 : 0;
            // The memory objective's progress is not in tokens/s: it explores until the budget or nothing new.
            stale = r.Objective == TuneObjective.Throughput && evaluator.Bests == bests ? stale + 1 : 0;
        }
    }

    private static bool Better(Candidate a, Candidate b, TuneObjective objective) => objective == TuneObjective.Memory
        ? a.GpuPeak < b.GpuPeak || (a.GpuPeak == b.GpuPeak && a.TokensPerSecond > b.TokensPerSecond)
        : a.TokensPerSecond > b.TokensPerSecond || (a.TokensPerSecond == b.TokensPerSecond && a.HostPeak < b.HostPeak);
}

using System.Globalization;
using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Hardware;
using AiOs.Planner.Measurement;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Probes;

/// <summary>How the in-step floor probe trains its small models: size, shape, steps, device and precision.</summary>
public sealed record InStepFloorOptions
{
    /// <summary>The device the engine trains on: <c>cuda</c>, <c>cuda:N</c> or <c>cpu</c>.</summary>
    public string Device { get; init; } = "cuda";
    /// <summary>The training precision.</summary>
    public Precision Precision { get; init; } = Precision.Bf16;
    /// <summary>Hidden size each family is widened to (<see cref="CpuComputeProbe.Widened"/>: 64-wide heads, FFN four times wider).</summary>
    public int Hidden { get; init; } = 768;
    /// <summary>Decoder layers of the small model: each step yields this many spans of each layer pass.</summary>
    public int Layers { get; init; } = 4;
    /// <summary>Vocabulary of the small model: small, so the embedding and head stay cheap.</summary>
    public int Vocab { get; init; } = 512;
    /// <summary>Micro-batch of the steps.</summary>
    public int MicroBatch { get; init; } = 1;
    /// <summary>Sequence length of the steps: short, so a layer's time is its host dispatch.</summary>
    public int SeqLen { get; init; } = 64;
    /// <summary>Steps run first and not measured (kernel selection, allocator, caches).</summary>
    public int WarmUpSteps { get; init; } = 2;
    /// <summary>Steps whose layer spans are measured.</summary>
    public int MeasuredSteps { get; init; } = 6;
    /// <summary>Seed of the initial weights, the dropout replay and the synthetic tokens.</summary>
    public long Seed { get; init; } = 1234;
    /// <summary>
    /// Also train the model with its parameters and optimizer in CPU RAM (the layer-by-layer trainer), for the floors of its
    /// own passes: its forward and recompute ran about 1.4× the resident trainer's floors in steps on two H100 VMs (2026-12-06).
    /// </summary>
    public bool Layerwise { get; init; } = true;
    /// <summary>
    /// Also train the layer-by-layer model while CPU Adam runs beside it on the threads the overlapped and delayed schedules
    /// give the update (all cores but one), for the floors of passes beside the update (on a GPU only: on a CPU device the
    /// passes share the cores with the update and are no floors). Launch-bound passes ran 1.5–3× slower beside the update
    /// in the H100 VMs' delayed steps (2026-12-06).
    /// </summary>
    public bool BesideUpdate { get; init; } = true;
    /// <summary>
    /// Parameters of the synthetic state the update beside the passes streams (<see cref="CpuUpdateLoad"/>): by default
    /// <see cref="CpuUpdateLoad.ElementsFor"/> this machine's last-level cache and free memory (at least 64 M, 1 GiB).
    /// </summary>
    public int UpdateLoadElements { get; init; } = CpuUpdateLoad.ElementsFor(CpuCaches.LastLevel(), HostMemory.Available());
}

/// <summary>
/// The dispatch floors of one layer kind as the engine's resident trainer runs its layers inside real steps: medians of the
/// device-timed spans (host-timed on a CPU) of the decoder layers' operations.
/// </summary>
/// <param name="Kind">The layer kind (<see cref="EngineLayerKind.Of"/>).</param>
/// <param name="Family">The model whose layer kind was trained.</param>
/// <param name="ForwardSeconds">A layer forward without autograd: the forward of the run with activation checkpointing.</param>
/// <param name="AutogradSeconds">A layer forward recording autograd: the forward of the run without checkpointing.</param>
/// <param name="BackwardSeconds">A layer backward: the backward of the run without checkpointing.</param>
/// <param name="ForwardSpans">Spans the no-autograd median was taken over.</param>
/// <param name="AutogradSpans">Spans the autograd median was taken over.</param>
/// <param name="BackwardSpans">Spans the backward median was taken over.</param>
/// <param name="Setup">The model and shape trained, for the figures' method: "&lt;family&gt; widened to h=…, N layers, mb 1 × seq".</param>
/// <param name="LayerwiseForwardSeconds">A layer forward of the layer-by-layer (offloaded) trainer; NaN: not measured.</param>
/// <param name="LayerwiseRecomputeSeconds">A layer recompute of the layer-by-layer trainer; NaN: not measured.</param>
/// <param name="LayerwiseBackwardSeconds">A layer backward of the layer-by-layer trainer; NaN: not measured.</param>
/// <param name="LayerwiseSpans">Spans of each layer-by-layer pass its medians were taken over.</param>
/// <param name="BesideForwardSeconds">A layer-by-layer forward beside the CPU update (<see cref="CpuUpdateLoad"/>); NaN: not measured.</param>
/// <param name="BesideRecomputeSeconds">A layer-by-layer recompute beside the CPU update; NaN: not measured.</param>
/// <param name="BesideBackwardSeconds">A layer-by-layer backward beside the CPU update; NaN: not measured.</param>
/// <param name="BesideSpans">Spans of each pass beside the update its medians were taken over (the fewest of the three).</param>
public sealed record InStepFloorSample(string Kind, string Family, double ForwardSeconds, double AutogradSeconds, double BackwardSeconds,
    int ForwardSpans, int AutogradSpans, int BackwardSpans, string Setup, double LayerwiseForwardSeconds = double.NaN,
    double LayerwiseRecomputeSeconds = double.NaN, double LayerwiseBackwardSeconds = double.NaN, int LayerwiseSpans = 0,
    double BesideForwardSeconds = double.NaN, double BesideRecomputeSeconds = double.NaN, double BesideBackwardSeconds = double.NaN, int BesideSpans = 0);

/// <summary>
/// Measures the layer dispatch floors inside real training steps (<c>aios calibrate-gpu</c>; on the CPU too, for tests). The
/// engine-kernel probe (<see cref="EngineKernelProbe"/>) times one hot layer back to back; inside a step the trainer adds per
/// operation what that misses (span events, dropout replay seeding, detached inputs, the program executor's bookkeeping,
/// memory sampling, many different layers), and launch-bound steps took 1.2–1.7× the probe's floors on the H100 VM. This
/// trains a small model of each family's layer kind with the engine's resident trainer (<see cref="DeviceTrainer"/>) on
/// synthetic tokens, once without activation checkpointing (forward with autograd, then backward) and once with it (forward
/// without autograd), and takes the median span of the decoder layers' passes over the measured steps.
/// </summary>
/// <remarks>The resident trainer writes no files (no swap folder), so nothing is left on disk.</remarks>
public static class InStepFloorProbe
{
    /// <summary>
    /// The floors of each distinct layer kind of <paramref name="families"/>, the first family of a kind measuring it;
    /// <paramref name="progress"/> receives one line per kind.
    /// </summary>
    public static IReadOnlyList<InStepFloorSample> MeasureKinds(IEnumerable<ModelSpec> families, InStepFloorOptions options, Action<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(families);
        return [.. EngineLayerKind.OnePerKind(families).Select(f => Measure(f.Family, options, progress))];
    }

    /// <summary>The floors of <paramref name="family"/>'s layer kind.</summary>
    /// <exception cref="ArgumentException">The options ask for no layers, no measured steps or an empty shape.</exception>
    /// <exception cref="InvalidOperationException">A run recorded no span of a layer pass.</exception>
    public static InStepFloorSample Measure(ModelSpec family, InStepFloorOptions options, Action<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(family);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Layers < 1 || options.MeasuredSteps < 1 || options.MicroBatch < 1 || options.SeqLen < 2 || options.Hidden < 64 || options.Vocab < 2)
            throw new ArgumentException($"The in-step floor probe needs at least one layer, one measured step, a micro-batch of 1 or more, a sequence of 2 or more, a hidden size of 64 or more and a vocabulary of 2 or more; got {options}.", nameof(options));
        var spec = Small(family, options);
        string kind = EngineLayerKind.Of(family);
        var plain = LayerSpans(spec, options, checkpointing: false);
        var checkpointed = LayerSpans(spec, options, checkpointing: true);
        var autograd = Seconds(plain, OpKind.Forward);
        var backward = Seconds(plain, OpKind.Backward);
        var forward = Seconds(checkpointed, OpKind.Forward);
        if (autograd.Count == 0 || backward.Count == 0 || forward.Count == 0)
            throw new InvalidOperationException($"The resident trainer recorded no layer spans for {spec.Name} (forward {forward.Count}, with autograd {autograd.Count}, backward {backward.Count}); its trace does not name layer passes as the probe expects.");
        string setup = string.Create(CultureInfo.InvariantCulture,
            $"{family.Name} widened to h={options.Hidden}, {options.Layers} layers, mb {options.MicroBatch} × {options.SeqLen}");
        var sample = new InStepFloorSample(kind, family.Name, Median(forward), Median(autograd), Median(backward), forward.Count, autograd.Count, backward.Count, setup);
        if (options.Layerwise)
        {
            if (LayerwiseMedians(LayerSpans(spec, options, checkpointing: false, offloaded: true), minimum: 1) is { } lw)
                sample = sample with
                {
                    LayerwiseForwardSeconds = lw.Forward, LayerwiseRecomputeSeconds = lw.Recompute, LayerwiseBackwardSeconds = lw.Backward, LayerwiseSpans = lw.Spans,
                };
        }
        if (options.Layerwise && options.BesideUpdate && sample.LayerwiseSpans > 0 && options.Device.StartsWith("cuda", StringComparison.Ordinal))
        {
            // An optional run: its failure must not cost the kind's floors measured above.
            try { sample = WithBesideUpdate(sample, spec, options); }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                progress?.Invoke($"warning: the in-step run beside the CPU update failed ({e.Message}); no floors beside the update for {family.Name}.");
            }
        }
        progress?.Invoke(string.Create(CultureInfo.InvariantCulture,
            $"in-step floors of {family.Name} ({kind}; {setup}, {options.MeasuredSteps} steps): forward {sample.ForwardSeconds * 1e6:0} µs, with autograd {sample.AutogradSeconds * 1e6:0} µs, backward {sample.BackwardSeconds * 1e6:0} µs")
            + (sample.LayerwiseSpans > 0 ? string.Create(CultureInfo.InvariantCulture,
                $"; layer by layer (offloaded) forward {sample.LayerwiseForwardSeconds * 1e6:0} µs, recompute {sample.LayerwiseRecomputeSeconds * 1e6:0} µs, backward {sample.LayerwiseBackwardSeconds * 1e6:0} µs") : "")
            + (sample.BesideSpans > 0 ? string.Create(CultureInfo.InvariantCulture,
                $"; beside the CPU update forward {sample.BesideForwardSeconds * 1e6:0} µs, recompute {sample.BesideRecomputeSeconds * 1e6:0} µs, backward {sample.BesideBackwardSeconds * 1e6:0} µs") : ""));
        return sample;
    }

    /// <summary>Spans of each pass needed beside the update for its medians to be written.</summary>
    public const int MinimumBesideSpans = 4;

    /// <summary>
    /// The layer-by-layer passes beside the CPU update: the model trained as for <see cref="InStepFloorSample.LayerwiseSpans"/>
    /// (DeepSpeed's schedule, parameters and optimizer in CPU RAM) while a <see cref="CpuUpdateLoad"/> runs CPU Adam on the
    /// threads the overlapped and delayed schedules give the engine's update, so that every pass runs beside an update from
    /// start to end. The sample is returned unchanged when fewer than <see cref="MinimumBesideSpans"/> of any pass were recorded.
    /// </summary>
    internal static InStepFloorSample WithBesideUpdate(InStepFloorSample sample, ModelSpec spec, InStepFloorOptions options)
    {
        int threads = EngineSettings.CpuUpdateThreads(new TrainingSettings { Schedule = StepSchedule.Delayed }, gpu: true) ?? Environment.ProcessorCount;
        List<TraceSpan> spans;
        // The trainer's own passes on the load's set, as in the overlapped and delayed schedules (one set of workers).
        using (CpuWorkers.UseForEveryPass(threads))
        using (var load = new CpuUpdateLoad(options.UpdateLoadElements, threads))
        {
            spans = LayerSpans(spec, options, checkpointing: false, offloaded: true);
            if (load.Failure is { } e) throw new InvalidOperationException($"the CPU update beside the passes failed after {load.Updates} updates: {e.Message}", e);
        }
        if (LayerwiseMedians(spans, MinimumBesideSpans) is not { } beside) return sample;
        return sample with
        {
            BesideForwardSeconds = beside.Forward, BesideRecomputeSeconds = beside.Recompute, BesideBackwardSeconds = beside.Backward, BesideSpans = beside.Spans,
        };
    }

    /// <summary>The seconds of <paramref name="spans"/> of operation <paramref name="kind"/>.</summary>
    private static List<double> Seconds(List<TraceSpan> spans, OpKind kind)
    {
        string name = SpanTrace.Name(kind);
        return [.. spans.Where(s => s.Operation == name).Select(s => s.Duration.Seconds)];
    }

    /// <summary>
    /// Medians of the layer-by-layer trainer's forward, recompute and backward spans, and the count of the fewest; null when
    /// any has fewer than <paramref name="minimum"/>.
    /// </summary>
    private static (double Forward, double Recompute, double Backward, int Spans)? LayerwiseMedians(List<TraceSpan> spans, int minimum)
    {
        var forward = Seconds(spans, OpKind.Forward);
        var recompute = Seconds(spans, OpKind.Recompute);
        var backward = Seconds(spans, OpKind.Backward);
        int fewest = Math.Min(forward.Count, Math.Min(recompute.Count, backward.Count));
        return fewest < minimum ? null : (Median(forward), Median(recompute), Median(backward), fewest);
    }

    /// <summary><paramref name="family"/>'s layer kind at the probe's size: widened, few layers, a small vocabulary, positions for the sequence.</summary>
    internal static ModelSpec Small(ModelSpec family, InStepFloorOptions options) => CpuComputeProbe.Widened(family, options.Hidden) with
    {
        Name = $"{family.Name}-h{options.Hidden}-in-step",
        NumLayers = options.Layers,
        VocabSize = options.Vocab,
        MaxSeqLen = options.SeqLen,
        SlidingWindow = family.SlidingWindow is { } w ? Math.Max(w, options.SeqLen) : null,
    };

    /// <summary>The spans of the decoder layers (not the embedding or head) over the measured steps of one run.</summary>
    private static List<TraceSpan> LayerSpans(ModelSpec spec, InStepFloorOptions options, bool checkpointing, bool offloaded = false)
    {
        var settings = new TrainingSettings
        {
            MicroBatch = options.MicroBatch,
            SeqLen = options.SeqLen,
            GradAccumulation = 1,
            Precision = options.Precision,
            ActivationCheckpointing = checkpointing,
            // The layer-by-layer trainer: parameters and optimizer in CPU RAM (nothing on disk).
            ParamOffload = offloaded ? OffloadTier.Cpu : OffloadTier.None,
            OptimizerOffload = offloaded ? OffloadTier.Cpu : OffloadTier.None,
        };
        var engine = new EngineOptions
        {
            Seed = options.Seed,
            Device = options.Device,
            RunId = $"in-step-floor-{Guid.NewGuid():N}",
        };
        settings = EngineSettings.ResolveHeadLoss(spec, settings, engine, profile: null);
        using ITrainer trainer = Trainers.Create(spec, settings, engine);
        var random = new Random(unchecked((int)options.Seed));
        TokenBatch Batch(int _)
        {
            int n = options.MicroBatch * options.SeqLen;
            long[] tokens = new long[n + 1];
            for (int i = 0; i < tokens.Length; i++) tokens[i] = random.Next(spec.VocabSize);
            return new TokenBatch(tensor(tokens[..n], [options.MicroBatch, options.SeqLen]), tensor(tokens[1..], [options.MicroBatch, options.SeqLen]));
        }
        for (int s = 0; s < Math.Max(0, options.WarmUpSteps); s++) trainer.Step(Batch);
        trainer.Trace.Drain();
        for (int s = 0; s < options.MeasuredSteps; s++) trainer.Step(Batch);
        return trainer.Trace.Drain()
            .Where(s => s.OpId >= 0 && s.Resource != SpanTrace.StallResource && s.Layer >= 0 && s.Layer < spec.NumLayers)
            .ToList();
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        return sorted[sorted.Length / 2];
    }
}

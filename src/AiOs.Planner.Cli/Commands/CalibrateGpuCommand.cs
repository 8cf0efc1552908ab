using System.CommandLine;
using AiOs.Planner.Calibration.Compute;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Engine.Probes;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;
using Spectre.Console;

namespace AiOs.Planner.Cli.Commands;

/// <summary><c>aios calibrate-gpu</c>: measure the GPU (copies, matmul, memory) into a profile, keeping its drive and CPU sections.</summary>
public static class CalibrateGpuCommand
{
    public static Command Create(CliIo io)
    {
        var output = new Option<string>("--out", "-o") { Description = "Profile file to write (updated in place when it exists)", Required = true };
        var baseProfile = new Option<string?>("--base") { Description = "Profile to start from when --out does not exist yet (name or path)" };
        var device = new Option<int>("--device") { Description = "CUDA device index", DefaultValueFactory = _ => 0 };
        var family = new Option<string>("--family") { Description = "Model whose layer kind the engine-kernel probe times (name or path)", DefaultValueFactory = _ => "gpt2" };
        var precision = new Option<Precision>("--precision") { Description = "Precision the engine's kernels are timed in: fp32|bf16|fp16", DefaultValueFactory = _ => Precision.Bf16, CustomParser = SettingsOptions.ParseEnum<Precision> };
        var floorFamilies = new Option<string>("--floor-families")
        {
            Description = "Comma-separated models (names or paths) whose layer kinds' dispatch floors are also timed, one per kind besides --family's",
            DefaultValueFactory = _ => DefaultFloorFamilies,
        };
        var noKernels = new Option<bool>("--no-engine-kernels") { Description = "Skip timing the engine's own kernels (layers, head and loss, AdamW) for the aios executor" };
        var noInStep = new Option<bool>("--no-in-step-floors")
        {
            Description = "Skip measuring the layer dispatch floors inside real steps of the engine's resident trainer (one small model per layer kind); the tiny-shape probe's floors are written instead",
        };
        var noReplays = new Option<bool>("--no-graph-replays")
        {
            Description = "Skip timing the layer's passes replayed from CUDA graphs (engine_kernels.graph_work, which prices --cuda-graphs runs); replayed layers are then priced as eager ones",
        };
        var command = new Command("calibrate-gpu", "Measure host↔GPU copies (pinned and pageable), matmul TFLOP/s for layer shapes, GPU memory and the engine's own kernels; write them into a profile.")
            { output, baseProfile, device, family, precision, floorFamilies, noKernels, noInStep, noReplays };
        command.SetAction(r =>
        {
            string path = r.GetValue(output)!;
            var profile = File.Exists(path) ? ProfileCatalog.LoadFile(path)
                : r.GetValue(baseProfile) is { } b ? ProfileCatalog.Default.Load(b)
                : throw new DescriptionException($"{path} does not exist; give --base PROFILE to start from (e.g. the profile `aios calibrate` wrote).");
            GpuMeasurement m;
            try
            {
                m = GpuProbe.Measure(r.GetValue(device));
            }
            catch (InvalidOperationException e)
            {
                io.Errors.MarkupLineInterpolated($"[red]error:[/] {e.Message}");
                return ExitCodes.Usage;
            }
            // The copies' and matmuls' figures are shown now, so a failure in the kernels' stage below does not hide them.
            foreach (string s in m.Samples) io.Console.MarkupLineInterpolated($"{s}");
            string date = DateTime.UtcNow.ToString("yyyy-MM-dd");
            var updated = GpuProbe.Apply(profile, m, date) with
            {
                Name = Path.GetFileNameWithoutExtension(path),
                Date = date,
            };
            if (!r.GetValue(noKernels))
            {
                var options = new EngineKernelProbeOptions
                {
                    Family = ModelCatalog.Default.Load(r.GetValue(family)!), FloorFamilies = LoadFamilies(r.GetValue(floorFamilies)),
                    Device = $"cuda:{r.GetValue(device)}", Precision = r.GetValue(precision),
                };
                if (r.GetValue(noReplays)) options = options with { GraphShapes = [] };
                var inStep = r.GetValue(noInStep) ? null : InStepOptions(options);
                (HardwareProfile Profile, Calibration.Compute.CpuLayerFitResult Fit) kernels;
                try
                {
                    kernels = EngineKernels(updated, options, date, line => io.Console.MarkupLineInterpolated($"[grey]{line}[/]"), inStep,
                        beforeReplays: fitted =>
                        {
                            // Saved before the captures, so a capture that ends the process loses none of the figures above.
                            DescriptionJson.WriteFileAtomic(path, fitted.Validated(path));
                            io.Console.MarkupLineInterpolated($"wrote {path} (the engine's kernels without the replays from CUDA graphs, which come next)");
                        });
                }
                catch (Exception e) when (e is Calibration.CalibrationException or ArgumentException)
                {
                    io.Errors.MarkupLineInterpolated($"[red]error:[/] the engine kernels' fit failed: {e.Message} Nothing was written; run again, or with --no-engine-kernels to write the copy and matmul figures above alone.");
                    return ExitCodes.Failure;
                }
                updated = kernels.Profile;
                io.Console.MarkupLineInterpolated($"engine kernels: matmul efficiency {kernels.Fit.MatmulEfficiency:0.000}, R² {kernels.Fit.RSquared:0.000}, RMS error {kernels.Fit.RmsRelativeError:P1} (forwards; backwards as {kernels.Fit.BackwardRatio:0.000} × the forward)");
                if (updated.Gpu?.EngineKernels?.BackwardWorkRatio is { } work)
                    io.Console.MarkupLineInterpolated($"backward priced as 2 × the forward's matmuls + {work.Value:0.000} × the rest of its time (engine_kernels.backward_work_ratio)");
            }
            DescriptionJson.WriteFileAtomic(path, updated.Validated(path));
            io.Console.MarkupLineInterpolated($"{m.Name}: {m.TotalMemory}; wrote {path}.");
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>
    /// The default <c>--floor-families</c>, one model of each bundled model's layer kind: GPT-2's (tanh GELU, dropout), the
    /// exact-GELU kind without dropout of tiny-gpt and the literature's shapes, Llama 2's (RMSNorm, rotary, SwiGLU, no bias, MHA),
    /// Llama 3's (grouped-query) and Qwen2's (Q, K, V biases); the main family's kind among them is not timed twice.
    /// </summary>
    public const string DefaultFloorFamilies = "gpt2,tiny-gpt,llama-2-7b,llama-3-8b,qwen2-7b";

    /// <summary>The models named in <paramref name="list"/> (comma-separated names or paths; empty: none).</summary>
    internal static IReadOnlyList<ModelSpec> LoadFamilies(string? list) =>
        (list ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(ModelCatalog.Default.Load).ToList();

    /// <summary>
    /// The in-step floor run for <paramref name="options"/>: its device, precision and seed, the probe's smallest hidden size
    /// (768 by default), and <see cref="InStepFloorOptions"/>' small model and short steps.
    /// </summary>
    internal static InStepFloorOptions InStepOptions(EngineKernelProbeOptions options) => new()
    {
        Device = options.Device,
        Precision = options.Precision,
        Seed = options.Seed,
        Hidden = options.HiddenSizes.Count > 0 ? options.HiddenSizes.Min() : new InStepFloorOptions().Hidden,
    };

    /// <summary>
    /// Times the engine's kernels with <paramref name="options"/> (any device: the tests run it on the CPU), fits them and
    /// writes them into <paramref name="profile"/>'s GPU section; the efficiency refers to the profile's matmul rate. With
    /// <paramref name="inStep"/>, the layer dispatch floors of the main family's kind and each floor family's are measured
    /// inside real steps of the engine's resident trainer too (<see cref="InStepFloorProbe"/>) and written instead of the
    /// probe's; a kind whose in-step run fails keeps the probe's floors, with a warning in <paramref name="progress"/>.
    /// </summary>
    internal static (HardwareProfile Profile, Calibration.Compute.CpuLayerFitResult Fit) EngineKernels(HardwareProfile profile, EngineKernelProbeOptions options,
        string date, Action<string>? progress = null, InStepFloorOptions? inStep = null, Action<HardwareProfile>? beforeReplays = null)
    {
        var gpu = profile.Gpu ?? throw new DescriptionException($"{profile.Name} has no gpu section; run calibrate-gpu on a GPU machine.");
        // The replays from CUDA graphs last of all: a capture is the one step that could end the process (a C++ exception), so
        // the profile fitted without them is handed to beforeReplays first (the command writes it).
        var m = EngineKernelProbe.Measure(options with { GraphShapes = [] }, progress);
        var inStepFloors = inStep is null ? null : InStepFloors(options, m, inStep, progress);
        if (beforeReplays is not null && options.GraphShapes.Count > 0 && options.Device.StartsWith("cuda", StringComparison.Ordinal))
            beforeReplays(EngineKernelFit.Apply(profile, Fitted(m).Kernels));
        m = m with { Replayed = EngineKernelProbe.MeasureReplays(options, progress) };
        var fit = Fitted(m);
        // Decoder layers only: the head's passes do not split their work as a layer does (the fused head takes its
        // gradients in forward: 10.9 ms forward, 0.7 ms backward on the H100), so they would bend the layers' backward
        // ratio and work terms (RMS 25.6% with them, 15.3% without, 2026-12-05); the program prices the head from its work.
        EngineKernelCalibration Fitted(EngineKernelMeasurement measured)
        {
            var timings = measured.Layers.Where(l => l.Unit != "head" && l.Pass is "forward" or "recompute" or "backward")
                .Select(Timing).ToList();
            var layerMatmul = measured.LayerMatmul is { Count: > 0 } points ? new LayerMatmulRates
            {
                Method = $"aios calibrate-gpu: TorchSharp, a decoder layer's four weight products (T × h)·(h × 3h), (T × h)·(h × h), (T × h)·(h × 4h), (T × 4h)·(4h × h) timed alone, FLOPs over the median of {options.Repeats} timings, {measured.Device}",
                Date = date,
                Points = points,
            } : null;
            string where = $"{options.Family.Name}-kind units, {Choice.NameOf(options.Precision)}, {measured.Device}, AdamW {measured.OptimizerName}";
            return EngineKernelFit.Fit(new EngineKernelTimings(timings, measured.FloorSeconds, measured.OptimizerSeconds, measured.OptimizerElements, gpu.MatmulRate(options.Precision), where,
                measured.NoGradFloorSeconds, measured.BackwardFloorSeconds, Bandwidth.FromGBps(gpu.MemoryBandwidthGbps.Value), measured.Kind,
                measured.KindFloors?.Select(k => new KindFloorTiming(k.Kind, k.Family, k.ForwardSeconds, k.AutogradSeconds, k.BackwardSeconds,
                    k.Work.Where(l => l.Pass is "forward" or "backward").Select(Timing).ToList())).ToList(),
                inStepFloors?.Select(k => new InStepFloorTiming(k.Kind, k.Family, k.ForwardSeconds, k.AutogradSeconds, k.BackwardSeconds,
                    k.ForwardSpans, k.AutogradSpans, k.BackwardSpans, k.Setup, k.LayerwiseForwardSeconds, k.LayerwiseRecomputeSeconds,
                    k.LayerwiseBackwardSeconds, k.LayerwiseSpans, k.BesideForwardSeconds, k.BesideRecomputeSeconds, k.BesideBackwardSeconds, k.BesideSpans)).ToList(),
                layerMatmul, options.Precision, measured.Replayed?.Select(Timing).ToList()),
                date, gpu.EngineKernels);
        }
        static LayerTiming Timing(LayerSample l) => new(l.Flops, l.SavedBytes, l.Hidden, l.IsBackward, l.Seconds, l.Pass, (long)l.MicroBatch * l.SeqLen);
        // Each timed pass as fitted (with its shape's matmul rate), and each replayed one, so the fit can be redone and checked away from the GPU.
        foreach (var t in fit.Passes)
            progress?.Invoke(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"pass {t.Label} hidden {t.Hidden} tokens {t.Tokens} flops {t.Flops:E4} saved_bytes {t.SavedBytes:E4} matmul_tflops {t.MatmulTflops:0.0} seconds {t.Seconds:E4} fitted {fit.Fit.Predict(t):E4}"));
        if (m.Replayed is { Count: > 0 } && fit.Kernels.GraphWork is null)
            progress?.Invoke("warning: the replays did not make a full grid of forward and backward passes with their saved bytes, so no graph_work was written; --cuda-graphs plans price their layers as eager passes");
        foreach (var t in fit.Replayed)
            progress?.Invoke(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"replayed {t.Label} hidden {t.Hidden} tokens {t.Tokens} flops {t.Flops:E4} saved_bytes {t.SavedBytes:E4} matmul_tflops {t.MatmulTflops:0.0} seconds {t.Seconds:E4}"));
        foreach (var p in fit.Kernels.GraphWork?.Points ?? [])
            progress?.Invoke(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"replayed from CUDA graphs, hidden {p.Hidden} tokens {p.Tokens}: beyond the products {p.ForwardMsPerGb:0.000} ms/GB forward, {p.BackwardMsPerGb:0.000} ms/GB backward"));
        return (EngineKernelFit.Apply(profile, fit.Kernels), fit.Fit);
    }

    /// <summary>
    /// The in-step floors of the main family's kind and each other kind of the floor families (the first family of a kind),
    /// each printed beside the probe's; a kind whose run fails is left out (the fit keeps the probe's floors for it) with a warning.
    /// </summary>
    private static List<InStepFloorSample> InStepFloors(EngineKernelProbeOptions options, EngineKernelMeasurement m, InStepFloorOptions inStep, Action<string>? progress)
    {
        var result = new List<InStepFloorSample>();
        foreach (var (family, kind) in EngineLayerKind.OnePerKind(options.FloorFamilies.Prepend(options.Family)))
        {
            InStepFloorSample s;
            try
            {
                // The layer-by-layer run only for the main kind: the fit takes its ratios from that kind alone.
                s = InStepFloorProbe.Measure(family, inStep with { Layerwise = inStep.Layerwise && kind == m.Kind }, progress);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                progress?.Invoke($"warning: the in-step floors of {family.Name} ({kind}) were not measured ({e.Message}); its tiny-shape probe floors are kept.");
                continue;
            }
            result.Add(s);
            (double Forward, double Autograd, double Backward) probe = kind == m.Kind
                ? (m.NoGradFloorSeconds, m.FloorSeconds, m.BackwardFloorSeconds)
                : m.KindFloors?.FirstOrDefault(k => k.Kind == kind) is { } k ? (k.ForwardSeconds, k.AutogradSeconds, k.BackwardSeconds) : (double.NaN, double.NaN, double.NaN);
            progress?.Invoke(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"floors of {family.Name} ({kind}), in step against the probe: forward {s.ForwardSeconds * 1e6:0} µs against {probe.Forward * 1e6:0}, with autograd {s.AutogradSeconds * 1e6:0} µs against {probe.Autograd * 1e6:0}, backward {s.BackwardSeconds * 1e6:0} µs against {probe.Backward * 1e6:0} ({s.ForwardSpans}, {s.AutogradSpans} and {s.BackwardSpans} spans)"));
        }
        return result;
    }
}

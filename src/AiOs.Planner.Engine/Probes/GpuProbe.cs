using System.Diagnostics;
using System.Runtime.InteropServices;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Hardware;
using AiOs.Planner.Units;
using TorchSharp;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Probes;

/// <summary>What the GPU probe measured.</summary>
public sealed record GpuMeasurement(
    string Name, Bytes TotalMemory,
    Bandwidth H2dPinned, Bandwidth D2hPinned, Bandwidth H2dPageable, Bandwidth D2hPageable,
    IReadOnlyDictionary<string, double> MatmulTflops, IReadOnlyList<string> Samples)
{
    /// <summary>Pinned copy rates beside CPU Adam on every core, as the profile's pinned rates scaled by the measured loaded ÷ alone ratio (<see cref="GpuProbe.BesideCpuUpdate"/>); null: not measured.</summary>
    public (Bandwidth H2d, Bandwidth D2h)? PinnedBesideCpuUpdate { get; init; }

    /// <summary>Bytes of its traffic the CPU update loses per byte pinned copies move beside it (<see cref="GpuProbe.BytesLostPerCopiedByte"/>); null: not measured.</summary>
    public double? CpuUpdateBytesLostPerCopiedByte { get; init; }

    /// <summary>
    /// Whether the copies beside CPU Adam were measured and failed (the load or a copy failed, or the figure fell outside the
    /// profile's range): <see cref="GpuProbe.Apply"/> then clears the profile's figures of that kind rather than keep another
    /// day's (or, with <c>--base</c>, another host's) beside this measurement's rates.
    /// </summary>
    public bool BesideCpuUpdateFailed { get; init; }

    /// <summary>The share of its rate the gradient-sum pass keeps beside pinned copies both ways (<see cref="GpuProbe.ShareOf"/>); null: not measured.</summary>
    public double? HostAddShareBesideCopies { get; init; }

    /// <summary>Whether the gradient sums beside the copies were measured and failed: <see cref="GpuProbe.Apply"/> then clears the profile's figure.</summary>
    public bool HostAddBesideCopiesFailed { get; init; }
}

/// <summary>
/// Measures a CUDA GPU through TorchSharp: host↔device copies (pinned and pageable, at several sizes, best of
/// several repeats) and dense matmul rates for transformer-layer shapes (bf16 and fp32, several hidden sizes),
/// and reads the device's memory from the CUDA driver.
/// </summary>
public static partial class GpuProbe
{
    private static readonly long[] CopySizes = [16L << 20, 256L << 20, 1L << 30];
    private static readonly int[] Hidden = [2048, 4096, 8192];

    public static GpuMeasurement Measure(int device = 0, int repeats = 5)
    {
        const string need = "No CUDA device: run the GPU probe on a machine with an NVIDIA GPU and PyTorch's CUDA libtorch (see the device notes).";
        try
        {
            TorchRuntime.EnsureReady(DeviceType.CUDA);
        }
        catch (Exception e) when (e is InvalidOperationException or TypeInitializationException or DllNotFoundException)
        {
            throw new InvalidOperationException($"{need} ({e.Message})", e);
        }
        if (!cuda.is_available()) throw new InvalidOperationException(need);
        var gpu = new Device(DeviceType.CUDA, device);
        using var scope = NewDisposeScope();
        var samples = new List<string>();
        double best(Func<double> once) { double b = 0; for (int i = 0; i < repeats; i++) b = Math.Max(b, once()); return b; }

        double h2dPinned = 0, d2hPinned = 0, h2dPageable = 0, d2hPageable = 0;
        foreach (long size in CopySizes)
        {
            long n = size / 4;
            var pageable = empty(n, ScalarType.Float32);
            var pinned = empty(n, ScalarType.Float32).pin_memory();
            var onGpu = empty(n, ScalarType.Float32, gpu);
            double Rate(Tensor dst, Tensor src) => CopyRate(dst, src, size);
            double hp = best(() => Rate(onGpu, pinned)), dp = best(() => Rate(pinned, onGpu));
            double hg = best(() => Rate(onGpu, pageable)), dg = best(() => Rate(pageable, onGpu));
            samples.Add($"copy {new Bytes(size)}: H2D pinned {hp:0.0}, D2H pinned {dp:0.0}, H2D pageable {hg:0.0}, D2H pageable {dg:0.0} GB/s");
            h2dPinned = Math.Max(h2dPinned, hp); d2hPinned = Math.Max(d2hPinned, dp);
            h2dPageable = Math.Max(h2dPageable, hg); d2hPageable = Math.Max(d2hPageable, dg);
        }

        var (beside, lost, besideFailed) = BesideCpuUpdate(gpu, samples, h2dPinned, d2hPinned);
        var (addShare, addFailed) = HostAddBesideCopies(gpu, samples);

        var rates = new Dictionary<string, double>();
        foreach (var (name, type) in new[] { ("bf16", ScalarType.BFloat16), ("fp32", ScalarType.Float32) })
        {
            foreach (int h in Hidden)
            {
                // A layer-shaped product: (tokens × h) · (h × 4h), tokens = 8192.
                const int tokens = 8192;
                var a = randn(tokens, h, type, gpu);
                var b = randn(h, 4 * h, type, gpu);
                double flops = 2.0 * tokens * h * 4 * h;
                double tflops = best(() =>
                {
                    cuda.synchronize();
                    var watch = Stopwatch.StartNew();
                    for (int i = 0; i < 10; i++) matmul(a, b).Dispose();
                    cuda.synchronize();
                    return 10 * flops / watch.Elapsed.TotalSeconds / 1e12;
                });
                samples.Add($"matmul {name} {tokens}×{h}·{h}×{4 * h}: {tflops:0.0} TFLOP/s");
                rates[name] = Math.Max(rates.GetValueOrDefault(name), tflops);
            }
        }
        return new GpuMeasurement(DeviceName(device), TotalMemory(), Bandwidth.FromGBps(h2dPinned), Bandwidth.FromGBps(d2hPinned),
            Bandwidth.FromGBps(h2dPageable), Bandwidth.FromGBps(d2hPageable), rates, samples) {
                PinnedBesideCpuUpdate = beside, CpuUpdateBytesLostPerCopiedByte = lost, BesideCpuUpdateFailed = besideFailed,
                HostAddShareBesideCopies = addShare, HostAddBesideCopiesFailed = addFailed,
            };
    }

    /// <summary>
    /// The engine's gradient-sum pass (<see cref="CpuUpdateLoad"/> with <see cref="HostLoadKind.GradientSums"/>: bf16 gradients
    /// added into fp32 sums over a state sixteen times the last-level cache, 32 M elements per call, on the threads the engine
    /// gives every pass beside the GPU's work) alone and while 1 GiB pinned copies loop both ways, in alternating windows
    /// (alone, beside, alone, …): each beside window's rate against the mean of the alone windows around it, the median of
    /// those (<see cref="ShareOf"/>). Inside an H100 VM's accumulating steps the adds ran at 0.6–0.7 of what
    /// <c>calibrate --host-only</c> measured with nothing beside them (2026-12-07); the copies are what those steps add.
    /// Optional: null and <c>Failed</c> (and a line in <paramref name="samples"/>) when the load or a copy fails or the share
    /// falls outside the profile's range, never a failed calibration.
    /// </summary>
    private static (double? Share, bool Failed) HostAddBesideCopies(Device gpu, List<string> samples)
    {
        int threads = Execution.EngineSettings.CpuUpdateThreads(new Settings.TrainingSettings { Schedule = Settings.StepSchedule.Delayed }, gpu: true) ?? Environment.ProcessorCount;
        try
        {
            return MeasureHostAddBesideCopies(gpu, samples, threads);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            samples.Add($"gradient sums beside copies not measured: {e.GetType().Name}: {e.Message}");
            return (null, true);
        }
    }

    private static (double? Share, bool Failed) MeasureHostAddBesideCopies(Device gpu, List<string> samples, int threads)
    {
        const long size = 1L << 30;
        using var host = empty(size / 4, ScalarType.Float32);
        using var pinned = host.pin_memory();
        using var onGpu = empty(size / 4, ScalarType.Float32, gpu);
        var alone = new List<double>();
        var beside = new List<double>();
        CpuUpdateLoad load;
        try
        {
            load = new CpuUpdateLoad(CpuUpdateLoad.ElementsFor(Measurement.CpuCaches.LastLevel(), Measurement.HostMemory.Available()), threads, HostLoadKind.GradientSums);
        }
        catch (Exception e) when (e is InvalidOperationException or OutOfMemoryException)
        {
            samples.Add($"gradient sums beside copies not measured: the load failed ({e.Message})");
            return (null, true);
        }
        using (load)
        {
            // Elements added per second over a window while `during` runs (or nothing: a sleep).
            double AddRate(Action during)
            {
                long e0 = load.ParametersUpdated;
                var watch = Stopwatch.StartNew();
                during();
                return (load.ParametersUpdated - e0) / watch.Elapsed.TotalSeconds;
            }
            for (int w = 0; w < 3; w++)
            {
                alone.Add(AddRate(() => Thread.Sleep(500)));
                beside.Add(AddRate(() => CopyBothWaysFor(onGpu, pinned, size, 0.6)));
            }
            alone.Add(AddRate(() => Thread.Sleep(500)));
            if (load.Failure is { } e)
            {
                samples.Add($"gradient sums beside copies not measured: the load failed ({e.Message})");
                return (null, true);
            }
        }
        const double traffic = 10; // bytes per element: the fp32 sum and the bf16 gradient read, the sum written
        double aloneRate = EngineKernelProbe.MedianOf(alone) * traffic / 1e9, besideRate = EngineKernelProbe.MedianOf(beside) * traffic / 1e9;
        if (ShareOf(alone, beside) is not { } share || share < HostLinkSpec.MinHostAddShareBesideCopies)
        {
            samples.Add($"gradient sums beside pinned copies both ways: {besideRate:0.0} GB/s of traffic against {aloneRate:0.0} alone; no figure written (no window added anything, or the share is below the profile's range)");
            return (null, true);
        }
        share = Math.Min(1, share);
        samples.Add($"gradient sums beside pinned copies both ways: {besideRate:0.0} GB/s of traffic against {aloneRate:0.0} alone on {threads} threads (medians of 3 and 4 alternating windows); " +
                    $"share {share:0.00} (the median of each beside window against the alone windows around it)");
        return (share, false);
    }

    /// <summary>
    /// The share of alternating windows <c>alone[0], beside[0], alone[1], …, beside[n−1], alone[n]</c>: each beside window's
    /// rate ÷ the mean of the two alone windows around it, then the median of those; null when no alone window did anything.
    /// </summary>
    internal static double? ShareOf(IReadOnlyList<double> alone, IReadOnlyList<double> beside) =>
        AgainstAloneWindows(alone, beside, (around, rate) => around > 0 ? rate / around : null);

    /// <summary>
    /// Alternating windows <c>alone[0], beside[0], alone[1], …, beside[n−1], alone[n]</c>: <paramref name="each"/> of every
    /// beside window against the mean of the two alone windows around it (null: the window says nothing), then the median
    /// of those; null when none said anything. A drift of the host's pace meets both sides of each comparison alike.
    /// </summary>
    private static double? AgainstAloneWindows<T>(IReadOnlyList<double> alone, IReadOnlyList<T> beside, Func<double, T, double?> each)
    {
        if (alone.Count != beside.Count + 1) throw new ArgumentException($"{beside.Count} beside windows need {beside.Count + 1} alone windows around them, not {alone.Count}.");
        var figures = new List<double>();
        for (int w = 0; w < beside.Count; w++)
            if (each((alone[w] + alone[w + 1]) / 2, beside[w]) is { } figure) figures.Add(figure);
        return figures.Count == 0 ? null : EngineKernelProbe.MedianOf(figures);
    }

    /// <summary>Copies <paramref name="size"/> bytes host→device, then back, over and over for at least <paramref name="seconds"/>; returns the bytes copied.</summary>
    private static long CopyBothWaysFor(Tensor onGpu, Tensor pinned, long size, double seconds)
    {
        long bytes = 0;
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed.TotalSeconds < seconds)
        {
            CopyRate(onGpu, pinned, size);
            CopyRate(pinned, onGpu, size);
            bytes += 2 * size;
        }
        return bytes;
    }

    /// <summary>GB/s of one synchronised copy of <paramref name="bytes"/> from <paramref name="src"/> into <paramref name="dst"/>.</summary>
    private static double CopyRate(Tensor dst, Tensor src, long bytes)
    {
        cuda.synchronize();
        var watch = Stopwatch.StartNew();
        dst.copy_(src);
        cuda.synchronize();
        return bytes / watch.Elapsed.TotalSeconds / 1e9;
    }

    /// <summary>
    /// Pinned copies of 1 GiB each way, the median of five, alone and then while the engine's CPU update (CpuAdam on bf16
    /// gradients, the bf16 copy written, 32 M parameters per call, on the threads the overlapped and delayed schedules give it
    /// beside the GPU's work) loops over a state sixteen times the last-level cache (<see cref="CpuUpdateLoad.ElementsFor"/>):
    /// what a copy engine keeps of its rate beside the update. The result is the profile's pinned rate
    /// (<paramref name="h2dPinned"/>, <paramref name="d2hPinned"/>: the best over sizes) times that loaded ÷ alone ratio, so
    /// the plan's share (StepCosts.BesideUpdate) compares like with like. Medians, as the copies race the load; 1 GiB, so the
    /// host thread's waits for a core around each synchronisation are a small part of each copy. The other side too: the
    /// update's rate with nothing beside it and while the copies loop both ways, in alternating windows (alone, beside, alone,
    /// …); each beside window is compared with the mean of the alone windows around it, so a drift of the host's pace meets
    /// both alike, and the figure is the median of those comparisons (<see cref="BytesLostPerCopiedByte"/>). Optional: nulls
    /// and <c>Failed</c> (and a line in <paramref name="samples"/>) when the load or a copy fails or the figure falls outside
    /// the profile's range, never a failed calibration.
    /// </summary>
    private static ((Bandwidth H2d, Bandwidth D2h)? Copies, double? Lost, bool Failed) BesideCpuUpdate(Device gpu, List<string> samples, double h2dPinned, double d2hPinned)
    {
        int threads = Execution.EngineSettings.CpuUpdateThreads(new Settings.TrainingSettings { Schedule = Settings.StepSchedule.Delayed }, gpu: true) ?? Environment.ProcessorCount;
        try
        {
            return MeasureBesideCpuUpdate(gpu, samples, h2dPinned, d2hPinned, threads);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A CUDA or TorchSharp error in an optional figure: said, and the calibration goes on (a broken CUDA context fails the next stage anyway).
            samples.Add($"copies beside CPU Adam not measured: {e.GetType().Name}: {e.Message}");
            return (null, null, true);
        }
    }

    private static ((Bandwidth H2d, Bandwidth D2h)? Copies, double? Lost, bool Failed) MeasureBesideCpuUpdate(Device gpu, List<string> samples, double h2dPinned, double d2hPinned, int threads)
    {
        const long size = 1L << 30;
        using var host = empty(size / 4, ScalarType.Float32);
        using var pinned = host.pin_memory();
        using var onGpu = empty(size / 4, ScalarType.Float32, gpu);
        double Median(Func<double> once) => Enumerable.Range(0, 5).Select(_ => once()).Order().ElementAt(2);
        double Rate(Tensor dst, Tensor src) => CopyRate(dst, src, size);
        double h2dAlone = Median(() => Rate(onGpu, pinned)), d2hAlone = Median(() => Rate(pinned, onGpu));
        double h2d, d2h;
        var alone = new List<double>();
        var beside = new List<(double Rate, double Copied)>();
        CpuUpdateLoad load;
        try
        {
            load = new CpuUpdateLoad(CpuUpdateLoad.ElementsFor(Measurement.CpuCaches.LastLevel(), Measurement.HostMemory.Available()), threads);
        }
        catch (Exception e) when (e is InvalidOperationException or OutOfMemoryException)
        {
            samples.Add($"copies beside CPU Adam not measured: the load failed ({e.Message})");
            return (null, null, true);
        }
        using (load)
        {
            // The update's own rate over a window: parameters it updated ÷ seconds, while `during` runs (or nothing: a sleep).
            (double Rate, double Seconds) UpdateRate(Action during)
            {
                long p0 = load.ParametersUpdated;
                var watch = Stopwatch.StartNew();
                during();
                return ((load.ParametersUpdated - p0) / watch.Elapsed.TotalSeconds, watch.Elapsed.TotalSeconds);
            }
            h2d = Median(() => Rate(onGpu, pinned));
            d2h = Median(() => Rate(pinned, onGpu));
            for (int w = 0; w < 3; w++)
            {
                alone.Add(UpdateRate(() => Thread.Sleep(500)).Rate);
                long bytes = 0;
                var (rate, seconds) = UpdateRate(() => bytes = CopyBothWaysFor(onGpu, pinned, size, 0.6));
                beside.Add((rate, bytes / seconds));
            }
            alone.Add(UpdateRate(() => Thread.Sleep(500)).Rate);
            if (load.Failure is { } e)
            {
                samples.Add($"copies beside CPU Adam not measured: the load failed ({e.Message})");
                return (null, null, true);
            }
        }
        if (h2d <= 0 || d2h <= 0)
        {
            samples.Add($"copies beside CPU Adam not measured: a copy rate came out {Math.Min(h2d, d2h):0.0} GB/s");
            return (null, null, true);
        }
        samples.Add($"copy 1 GiB beside CPU Adam on {threads} threads: H2D pinned {h2d:0.0} (alone {h2dAlone:0.0}), D2H pinned {d2h:0.0} (alone {d2hAlone:0.0}) GB/s, medians of 5");
        var copies = (Bandwidth.FromGBps(h2dPinned * Math.Min(1, h2d / h2dAlone)), Bandwidth.FromGBps(d2hPinned * Math.Min(1, d2h / d2hAlone)));
        double? lost = InterferenceOf(alone, beside);
        double aloneRate = EngineKernelProbe.MedianOf(alone), besideRate = EngineKernelProbe.MedianOf(beside.Select(b => b.Rate));
        double copied = EngineKernelProbe.MedianOf(beside.Select(b => b.Copied));
        if (lost is not { } figure || figure > HostLinkSpec.MaxCpuUpdateBytesLostPerCopiedByte)
        {
            samples.Add($"CPU Adam beside pinned copies both ways ({copied / 1e9:0.0} GB/s): {besideRate / 1e9:0.00} G params/s against {aloneRate / 1e9:0.00} alone; " +
                        $"no figure written ({(lost is { } l ? $"{l:0.00} bytes lost per copied byte is above the profile's range" : "no window updated or copied")})");
            return (copies, null, true);
        }
        samples.Add($"CPU Adam beside pinned copies both ways ({copied / 1e9:0.0} GB/s): {besideRate / 1e9:0.00} G params/s against {aloneRate / 1e9:0.00} alone " +
                    $"(medians of 3 and 4 alternating windows); {figure:0.00} bytes of its traffic lost per copied byte (the median of each beside window against the alone windows around it)");
        return (copies, figure, false);
    }

    /// <summary>
    /// The figure of alternating windows <c>alone[0], beside[0], alone[1], …, beside[n−1], alone[n]</c>: each beside window's
    /// <see cref="BytesLostPerCopiedByte"/> against the mean of the two alone windows around it, then the median of those;
    /// null when no window updated or copied anything.
    /// </summary>
    internal static double? InterferenceOf(IReadOnlyList<double> alone, IReadOnlyList<(double Rate, double Copied)> beside) =>
        AgainstAloneWindows(alone, beside, (around, b) => around > 0 && b.Copied > 0 ? BytesLostPerCopiedByte(around, b.Rate, b.Copied) : null);

    /// <summary>
    /// Bytes of its own traffic (<see cref="Simulation.StepCosts.AdamHostBytesPerParameter"/> per parameter) the CPU update
    /// loses per byte the copies move: (<paramref name="alone"/> − <paramref name="beside"/>) parameters per second × 28 B ÷
    /// <paramref name="copiedBytesPerSecond"/>; never below 0 (an update that ran faster beside the copies lost nothing).
    /// </summary>
    internal static double BytesLostPerCopiedByte(double alone, double beside, double copiedBytesPerSecond) =>
        Math.Max(0, (alone - beside) * Simulation.StepCosts.AdamHostBytesPerParameter / copiedBytesPerSecond);

    /// <summary>Writes the measurement into a profile's GPU and host-link sections, keeping everything else.</summary>
    public static HardwareProfile Apply(HardwareProfile profile, GpuMeasurement m, string date)
    {
        Figure F(double v, string method) => Figure.Measured(Math.Round(v, 3), date, method);
        var gpu = profile.Gpu ?? new GpuSpec { Model = m.Name, MemoryGib = 0, PeakTflops = new PerPrecision(), MemoryBandwidthGbps = 1000 };
        var link = profile.HostLink ?? new HostLinkSpec { H2dPinnedGbps = 1, D2hPinnedGbps = 1, H2dPageableGbps = 1, D2hPageableGbps = 1 };
        const string copy = "TorchSharp copy_ of 16 MiB–1 GiB tensors, best of 5, synchronised";
        const string besideCopy = "the pinned rate × (TorchSharp copy_ of a 1 GiB pinned tensor while CpuAdam on bf16 gradients loops over 16 × the last-level cache, 32 M parameters per call, on every core but the launching thread's ÷ the same copy alone), medians of 5";
        const string addShareMethod = "the engine's gradient-sum pass (bf16 into fp32 sums, 32 M elements per call, a state of 16 × the last-level cache, one core left to the launching thread): its rate while 1 GiB pinned copies loop both ways ÷ its rate alone, the median of 3 alternating windows";
        const string lostMethod = "(CpuAdam's rate alone − its rate while 1 GiB pinned copies loop both ways) × 28 B ÷ the copies' bytes per second; bf16 gradients, 32 M parameters per call, a state of 16 × the last-level cache, one core left to the launching thread";
        const string mm = "TorchSharp matmul (8192 × h)·(h × 4h), h = 2048/4096/8192, best rate";
        return profile with
        {
            GpusPerNode = Math.Max(1, profile.GpusPerNode),
            Gpu = gpu with
            {
                Model = m.Name,
                MemoryGib = m.TotalMemory.Value > 0 ? F(m.TotalMemory.GiB, "CUDA driver cuMemGetInfo total") : gpu.MemoryGib,
                MatmulTflops = new PerPrecision
                {
                    Bf16 = m.MatmulTflops.TryGetValue("bf16", out double b) ? F(b, mm) : gpu.MatmulTflops?.Bf16,
                    Fp16 = m.MatmulTflops.TryGetValue("bf16", out double f) ? Figure.Measured(Math.Round(f, 3), date, mm + " (bf16 figure)") : gpu.MatmulTflops?.Fp16,
                    Fp32 = m.MatmulTflops.TryGetValue("fp32", out double s) ? F(s, mm) : gpu.MatmulTflops?.Fp32,
                },
            },
            HostLink = link with
            {
                H2dPinnedGbps = F(m.H2dPinned.GBps, copy), D2hPinnedGbps = F(m.D2hPinned.GBps, copy),
                H2dPageableGbps = F(m.H2dPageable.GBps, copy), D2hPageableGbps = F(m.D2hPageable.GBps, copy),
                // Measured: this host's figures. Attempted and failed: none (another day's or host's would sit beside today's rates).
                // Not attempted (a measurement made elsewhere): the profile's.
                H2dPinnedBesideCpuUpdateGbps = m.PinnedBesideCpuUpdate is { } b1 ? F(b1.H2d.GBps, besideCopy) : m.BesideCpuUpdateFailed ? null : link.H2dPinnedBesideCpuUpdateGbps,
                D2hPinnedBesideCpuUpdateGbps = m.PinnedBesideCpuUpdate is { } b2 ? F(b2.D2h.GBps, besideCopy) : m.BesideCpuUpdateFailed ? null : link.D2hPinnedBesideCpuUpdateGbps,
                CpuUpdateBytesLostPerCopiedByte = m.CpuUpdateBytesLostPerCopiedByte is { } lost ? F(lost, lostMethod) : m.BesideCpuUpdateFailed ? null : link.CpuUpdateBytesLostPerCopiedByte,
                HostAddShareBesideCopies = m.HostAddShareBesideCopies is { } addShare ? F(addShare, addShareMethod) : m.HostAddBesideCopiesFailed ? null : link.HostAddShareBesideCopies,
            },
        };
    }

    private static string DeviceName(int device)
    {
        try
        {
            var psi = new ProcessStartInfo("nvidia-smi", $"--query-gpu=name --format=csv,noheader -i {device}") { RedirectStandardOutput = true };
            using var p = Process.Start(psi)!;
            string name = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            return name.Length > 0 ? name : "CUDA GPU";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "CUDA GPU";
        }
    }

    /// <summary>Total device memory from the CUDA driver (the primary context is current after TorchSharp's first CUDA tensor).</summary>
    private static Bytes TotalMemory()
    {
        try
        {
            return new Bytes(CudaDriver.MemoryInfo().Total);
        }
        catch (Exception e) when (e is DllNotFoundException or InvalidOperationException)
        {
            return Bytes.Zero;
        }
    }
}

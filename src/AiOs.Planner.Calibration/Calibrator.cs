using System.Diagnostics;
using AiOs.Planner.Calibration.Drive;
using AiOs.Planner.Calibration.Host;
using AiOs.Planner.Calibration.Machine;
using AiOs.Planner.Measurement;
using AiOs.Planner.Hardware;
using AiOs.Planner.Settings;
using AiOs.Planner.Storage;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration;

/// <summary>
/// Runs a calibration: machine facts; the drive (lay out a test file while watching for a write cache,
/// sweep reads, sweep writes, fit a curve per direction, then cycle working sets as training swaps them); memory copy and CPU Adam (fp32 gradients, and the engine's bf16 update) on one and all threads, and the bf16 update's fixed cost per call;
/// then builds the profile. The test file is deleted however the run ends.
/// </summary>
public static class Calibrator
{
    /// <summary>Settings for the layout pass: DeepSpeed's usual 1 MiB blocks, 8 deep.</summary>
    private static readonly AioSettings LayoutSettings = new() { BlockSize = Bytes.FromMiB(1), QueueDepth = 8, IntraOpParallelism = 1 };

    /// <summary>Calibrates and returns the result; nothing is written to disk except the (deleted) test file.</summary>
    public static async Task<CalibrationResult> RunAsync(CalibrationOptions options, IProgress<CalibrationProgress>? progress, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(options);
        var clock = Stopwatch.StartNew();
        var mode = ModeSettings.For(options.Mode).SizedFor(CpuCaches.LastLevel(), MachineFacts.Available());
        var tracker = new ProgressTracker(mode, progress);
        if (!Directory.Exists(options.NvmePath))
            throw new CalibrationException($"--nvme-path {options.NvmePath} does not exist; create it or pass a folder on the drive to test.");
        var machine = MachineFacts.Read(options.NvmePath);
        var warnings = new List<string>();
        if (StorageInspector.IsMemory(machine.Storage.FileSystem))
            warnings.Add($"{options.NvmePath} is on {machine.Storage.FileSystem}, which is RAM, not a drive: the figures measure memory, and swap files there take RAM from training.");

        DriveCalibration drive;
        using (var file = TestFile.Create(options.NvmePath, options.TestFileSize ?? mode.TestFileSize, mode.MinTestFileSize))
        {
            if (file.ShrinkNote is { } shrink) warnings.Add(shrink);
            if (file.File.FallbackWarning is { } fallback) warnings.Add(fallback);
            tracker.SetLayout(file.Size);
            drive = await MeasureDriveAsync(file, mode, tracker, ct).ConfigureAwait(false);
        }

        var host = MeasureHost(mode, tracker, ct);
        var profile = ProfileBuilder.Build(options, machine, drive, host);
        warnings.AddRange(StorageAdvice.Check(profile, machine));
        tracker.Finish();
        return new CalibrationResult { Machine = machine, Drive = drive, Host = host, Profile = profile, Warnings = warnings, Elapsed = clock.Elapsed };
    }

    private static async Task<DriveCalibration> MeasureDriveAsync(TestFile file, ModeSettings mode, ProgressTracker tracker, CancellationToken ct)
    {
        using var probe = new DriveProbe(file.File, file.Size);
        var layout = await probe.LayOutAsync(LayoutSettings, mode.LayoutSegments, new ImmediateProgress<Bytes>(tracker.LayoutDone), ct).ConfigureAwait(false);
        tracker.LayoutFinished();

        // Reads first, while the data written by the layout has not been read back (cold).
        var reads = await SweepAsync(probe, IoDirection.Read, mode, tracker, ct).ConfigureAwait(false);
        var writes = await SweepAsync(probe, IoDirection.Write, mode, tracker, ct).ConfigureAwait(false);
        // Last, the pattern training has: read what was written a pass earlier, write it back, next.
        var swap = await SwapProbe.MeasureSizesAsync(file.File, file.Size, LayoutSettings, SwapProbe.DefaultChunk,
            new ImmediateProgress<double>(tracker.SwapDone), ct).ConfigureAwait(false);
        var readCurve = DriveCurveFit.Fit(reads);
        var writeCurve = DriveCurveFit.Fit(writes);
        var cache = CacheDetector.Detect(layout, Bandwidth.FromGBps(readCurve.PeakGbps), Bandwidth.FromGBps(writeCurve.PeakGbps), file.Size);
        return new DriveCalibration
        {
            TestFileSize = file.Size,
            DirectIo = file.File.IsDirect,
            Layout = layout,
            ReadSamples = reads,
            ReadCurve = readCurve,
            WriteSamples = writes,
            WriteCurve = writeCurve,
            Cache = cache,
            Swap = swap,
        };
    }

    private static async Task<IReadOnlyList<DriveSample>> SweepAsync(DriveProbe probe, IoDirection direction, ModeSettings mode, ProgressTracker tracker, CancellationToken ct)
    {
        string phase = direction == IoDirection.Read ? "drive reads" : "drive writes";
        tracker.StartSweep(phase);
        var samples = await DriveSweep.RunAsync(
            async (settings, token) => (await probe.MeasureAsync(settings, direction, mode.Sweep.SampleDuration, mode.Sweep.SampleMinBytes, token).ConfigureAwait(false)).Rate,
            mode.Sweep, _ => tracker.SampleDone(phase), ct).ConfigureAwait(false);
        tracker.SweepFinished();
        return samples;
    }

    /// <summary>
    /// Measures only memory copy and CPU Adam (no drive, no test file), for <see cref="ProfileBuilder.WithHost"/> to write
    /// into an existing profile. The progress total still counts a drive sweep: report phases, not the fraction.
    /// </summary>
    public static HostCalibration MeasureHostOnly(CalibrationMode mode, IProgress<CalibrationProgress>? progress, CancellationToken ct)
    {
        var settings = ModeSettings.For(mode).SizedFor(CpuCaches.LastLevel(), MachineFacts.Available());
        var tracker = new ProgressTracker(settings, progress);
        var host = MeasureHost(settings, tracker, ct);
        tracker.Finish();
        return host;
    }

    private static HostCalibration MeasureHost(ModeSettings mode, ProgressTracker tracker, CancellationToken ct)
    {
        int threads = System.Environment.ProcessorCount;
        tracker.HostStep("memory copy");
        var copyOne = MemoryProbe.Measure(mode.MemcpySize, 1, mode.HostProbeDuration, ct);
        tracker.HostStep("memory copy");
        var copyAll = threads == 1 ? copyOne : MemoryProbe.Measure(mode.MemcpySize, threads, mode.HostProbeDuration, ct);
        // One kernel on one thread, then on all (the same figure when there is one thread): two host steps.
        (double One, double All) Adam(string phase, AdamProbeKernel kernel, long subGroup)
        {
            tracker.HostStep(phase);
            return AdamProbe.MeasureOneAndAll(kernel, mode.AdamParameters, subGroup, threads, mode.HostProbeDuration, ct, () => tracker.HostStep(phase));
        }
        var (adamOne, adamAll) = Adam("CPU Adam", AdamProbeKernel.Fp32Gradients, mode.AdamParameters);
        // The engine's bf16 update (bf16 gradients in, bf16 copy out), one sub-group per call over the same state size.
        long subGroup = Math.Min(AdamProbe.EngineSubGroup, mode.AdamParameters);
        var (bf16One, bf16All) = Adam("CPU Adam", AdamProbeKernel.Bf16Gradients, subGroup);
        // The engine's fp16 update (fp32 gradient sums in, fp16 copy out): the cast to fp16 costs more than bf16's rounding.
        var (fp16One, fp16All) = Adam("CPU Adam fp16", AdamProbeKernel.Fp16Copy, subGroup);
        // The engine's 8-bit update (--optimizer-state 8bit) on the same sub-groups: compute-bound where fp32 is memory-bound,
        // so its ratio to fp32 depends on the cores per memory channel and is measured, not assumed.
        var (eightOne, eightAll) = Adam("CPU Adam 8-bit", AdamProbeKernel.EightBit, subGroup);
        // The same update call by call at sizes from 16 K to 16 M: its fixed cost per call apart from its cost per parameter.
        tracker.HostStep("CPU Adam per call");
        var sizes = AdamCallProbe.CalibrationSizes;
        var calls = AdamCallProbe.Measure(AdamProbeKernel.Bf16Gradients, sizes, mode.AdamParameters, threads, mode.HostProbeDuration / sizes.Count, ct);
        // The engine's gradient-sum pass (a later micro-batch's download adds into the fp32 sums on the host).
        tracker.HostStep("gradient sums");
        var sumsRate = GradientSumProbe.Measure(mode.AdamParameters, mode.HostProbeDuration, ct);
        tracker.HostStep("done");
        return new HostCalibration
        {
            Threads = threads, MemcpyOneThread = copyOne, MemcpyAllThreads = copyAll, AdamOneThread = adamOne, AdamAllThreads = adamAll,
            AdamBf16OneThread = bf16One, AdamBf16AllThreads = bf16All, AdamBf16SubGroup = subGroup,
            AdamFp16OneThread = fp16One, AdamFp16AllThreads = fp16All, Adam8OneThread = eightOne, Adam8AllThreads = eightAll,
            AdamCalls = calls, AdamCallFit = CallCostFit.Fit(calls), GradientSums = sumsRate,
        };
    }
}

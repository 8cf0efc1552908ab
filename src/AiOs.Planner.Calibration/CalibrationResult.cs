using AiOs.Planner.Calibration.Drive;
using AiOs.Planner.Calibration.Machine;
using AiOs.Planner.Hardware;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration;

/// <summary>Where a calibration is: a phase name and progress in estimated seconds of work.</summary>
public sealed record CalibrationProgress(string Phase, double Done, double Total);

/// <summary>What the drive measurements found.</summary>
public sealed record DriveCalibration
{
    /// <summary>Size of the test file actually used (after any shrinking).</summary>
    public required Bytes TestFileSize { get; init; }
    /// <summary>Whether O_DIRECT was in effect (false after a buffered fallback).</summary>
    public required bool DirectIo { get; init; }
    /// <summary>Write rate of each layout segment, in file order (cache detection).</summary>
    public required IReadOnlyList<ProbeResult> Layout { get; init; }
    /// <summary>Read sweep samples.</summary>
    public required IReadOnlyList<DriveSample> ReadSamples { get; init; }
    /// <summary>The curve fitted to the read samples.</summary>
    public required DriveCurve ReadCurve { get; init; }
    /// <summary>Write sweep samples.</summary>
    public required IReadOnlyList<DriveSample> WriteSamples { get; init; }
    /// <summary>The curve fitted to the write samples.</summary>
    public required DriveCurve WriteCurve { get; init; }
    /// <summary>What cache detection concluded.</summary>
    public required CacheFinding Cache { get; init; }
    /// <summary>The swap cycles (a working set written, then read and rewritten chunk by chunk), smallest first; empty when not run.</summary>
    public IReadOnlyList<SwapMeasurement> Swap { get; init; } = [];
}

/// <summary>What the host measurements found.</summary>
public sealed record HostCalibration
{
    /// <summary>Threads used for the all-threads measurements (logical CPUs).</summary>
    public required int Threads { get; init; }
    /// <summary>Memory-copy rate on one thread.</summary>
    public required Bandwidth MemcpyOneThread { get; init; }
    /// <summary>Memory-copy rate on all threads.</summary>
    public required Bandwidth MemcpyAllThreads { get; init; }
    /// <summary>The engine's gradient-sum pass on every core, bytes of memory traffic per second (<see cref="Host.GradientSumProbe"/>); null when not measured.</summary>
    public Bandwidth? GradientSums { get; init; }
    /// <summary>CPU Adam parameters per second, one thread.</summary>
    public required double AdamOneThread { get; init; }
    /// <summary>CPU Adam parameters per second, all threads.</summary>
    public required double AdamAllThreads { get; init; }
    /// <summary>The engine's bf16 CPU Adam (bf16 gradients read, bf16 copy written) parameters per second, one thread; null when not measured.</summary>
    public double? AdamBf16OneThread { get; init; }
    /// <summary>The engine's bf16 CPU Adam parameters per second, all threads; null when not measured.</summary>
    public double? AdamBf16AllThreads { get; init; }
    /// <summary>The engine's fp16 CPU Adam (fp32 gradients read, fp16 copy written) parameters per second, one thread; null when not measured.</summary>
    public double? AdamFp16OneThread { get; init; }
    /// <summary>The engine's fp16 CPU Adam parameters per second, all threads; null when not measured.</summary>
    public double? AdamFp16AllThreads { get; init; }
    /// <summary>The engine's 8-bit CPU Adam (<c>BlockwiseAdam</c>, bf16 copy written) parameters per second, one thread; null when not measured.</summary>
    public double? Adam8OneThread { get; init; }
    /// <summary>The engine's 8-bit CPU Adam parameters per second, all threads; null when not measured.</summary>
    public double? Adam8AllThreads { get; init; }
    /// <summary>Parameters per call of the bf16, fp16 and 8-bit Adam measurements (an engine sub-group); 0 when not measured.</summary>
    public long AdamBf16SubGroup { get; init; }
    /// <summary>The engine's bf16 CPU Adam timed per call at sizes from 16 K to 16 M parameters, all threads (<see cref="Host.AdamCallProbe"/>); empty when not measured.</summary>
    public IReadOnlyList<Host.CallTiming> AdamCalls { get; init; } = [];
    /// <summary><see cref="AdamCalls"/> fitted as <c>t = a + b·n</c>: the fixed cost per update call; null when not measured.</summary>
    public Host.CallCostFit? AdamCallFit { get; init; }
}

/// <summary>Everything a calibration measured, the profile it produced, and warnings for the user.</summary>
public sealed record CalibrationResult
{
    /// <summary>CPU, RAM, kernel and drive facts.</summary>
    public required MachineFacts Machine { get; init; }
    /// <summary>Drive measurements and fits.</summary>
    public required DriveCalibration Drive { get; init; }
    /// <summary>Memory-copy and CPU Adam measurements.</summary>
    public required HostCalibration Host { get; init; }
    /// <summary>The calibrated profile (not yet written anywhere).</summary>
    public required HardwareProfile Profile { get; init; }
    /// <summary>Things the user should know: shrunk file, fallback, tmpfs, slow drive.</summary>
    public required IReadOnlyList<string> Warnings { get; init; }
    /// <summary>Wall time of the whole calibration.</summary>
    public required TimeSpan Elapsed { get; init; }
}

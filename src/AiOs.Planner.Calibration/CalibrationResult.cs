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
    public required Bytes TestFileSize { get; init; }
    public required bool DirectIo { get; init; }
    public required IReadOnlyList<ProbeResult> Layout { get; init; }
    public required IReadOnlyList<DriveSample> ReadSamples { get; init; }
    public required DriveCurve ReadCurve { get; init; }
    public required IReadOnlyList<DriveSample> WriteSamples { get; init; }
    public required DriveCurve WriteCurve { get; init; }
    public required CacheFinding Cache { get; init; }
}

/// <summary>What the host measurements found.</summary>
public sealed record HostCalibration
{
    public required int Threads { get; init; }
    public required Bandwidth MemcpyOneThread { get; init; }
    public required Bandwidth MemcpyAllThreads { get; init; }
    /// <summary>CPU Adam parameters per second, one thread.</summary>
    public required double AdamOneThread { get; init; }
    /// <summary>CPU Adam parameters per second, all threads.</summary>
    public required double AdamAllThreads { get; init; }
}

/// <summary>Everything a calibration measured, the profile it produced, and warnings for the user.</summary>
public sealed record CalibrationResult
{
    public required MachineFacts Machine { get; init; }
    public required DriveCalibration Drive { get; init; }
    public required HostCalibration Host { get; init; }
    public required HardwareProfile Profile { get; init; }
    public required IReadOnlyList<string> Warnings { get; init; }
    public required TimeSpan Elapsed { get; init; }
}

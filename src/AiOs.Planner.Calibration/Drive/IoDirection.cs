namespace AiOs.Planner.Calibration.Drive;

/// <summary>Which way data moves between memory and the drive.</summary>
public enum IoDirection
{
    Read,
    Write,
}

namespace AiOs.Planner.Calibration;

/// <summary>Calibration cannot run as asked (bad path, too little space); the message says what to do.</summary>
public sealed class CalibrationException : Exception
{
    public CalibrationException() { }
    public CalibrationException(string message) : base(message) { }
    public CalibrationException(string message, Exception inner) : base(message, inner) { }
}

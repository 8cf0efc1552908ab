namespace AiOs.Planner.Calibration;

/// <summary>
/// Reports on the reporting thread, in order. <see cref="Progress{T}"/> posts each report to the thread pool,
/// where a late report can arrive after, and overwrite, a later phase's.
/// </summary>
public sealed class ImmediateProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}

using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration;

/// <summary>
/// Progress in estimated seconds of work, so a progress bar's ETA means something: the layout is weighted
/// by its size at an assumed 1.5 GB/s, and so is the swap probe (by the bytes it moves), each
/// sweep sample by its duration, each host probe by its duration.
/// A sweep that stops early drops its remaining samples from the total.
/// </summary>
internal sealed class ProgressTracker(ModeSettings mode, IProgress<CalibrationProgress>? sink)
{
    private const double AssumedGBps = 1.5;
    private const int HostSteps = 12;
    private readonly double _sampleSeconds = mode.Sweep.SampleDuration.TotalSeconds + 0.05;
    /// <summary>
    /// A host step: its timed duration with some slack, plus filling its probe state (about 16 bytes per Adam parameter at
    /// ~1 GB/s of seeded fill: a second for the 64 M parameters every mode probes; the quick mode's host steps measured
    /// 14.6 s in all on the CI VM, against 3.5 s estimated from the durations alone).
    /// </summary>
    private readonly double _hostSeconds = mode.HostProbeDuration.TotalSeconds * 1.3 + mode.AdamParameters * 16e-9;
    private readonly int?[] _sweepSamples = new int?[2];
    private double _layoutSeconds;
    private double _layoutFraction;
    private double _swapSeconds;
    private double _swapFraction;
    private int _sweep = -1;
    private int _samples;
    private int _hostStepsDone;
    private string _phase = "starting";

    private double SweepSeconds(int i, bool done) =>
        _sweepSamples[i] is { } n ? n * _sampleSeconds
        : i == _sweep ? (done ? _samples : mode.Sweep.MaxSamples) * _sampleSeconds
        : done ? 0 : mode.Sweep.MaxSamples * _sampleSeconds;

    private double Done => _layoutSeconds * _layoutFraction + SweepSeconds(0, true) + SweepSeconds(1, true) + _swapSeconds * _swapFraction + _hostStepsDone * _hostSeconds;

    private double Total => _layoutSeconds + SweepSeconds(0, false) + SweepSeconds(1, false) + _swapSeconds + HostSteps * _hostSeconds;

    /// <summary>Sets the test file's size: the layout writes it once, the swap probe writes, reads and rewrites it and smaller parts.</summary>
    public void SetLayout(Bytes size) => Set("laying out test file", () =>
    {
        _layoutSeconds = size.GB / AssumedGBps;
        _swapSeconds = Drive.SwapProbe.TrafficFor(size, Drive.SwapProbe.DefaultChunk).GB / AssumedGBps;
    });

    /// <summary>The swap probe has done <paramref name="fraction"/> of its work.</summary>
    public void SwapDone(double fraction) => Set("drive swap cycles", () => _swapFraction = Math.Clamp(fraction, 0, 1));

    public void LayoutDone(Bytes written) => Set("laying out test file", () => _layoutFraction = Math.Min(1, written.GB / Math.Max(1e-9, _layoutSeconds * AssumedGBps)));

    public void LayoutFinished() => _layoutFraction = 1;

    public void StartSweep(string phase) => Set(phase, () => { _sweep++; _samples = 0; });

    public void SampleDone(string phase) => Set(phase, () => _samples++);

    public void SweepFinished() => _sweepSamples[_sweep] = _samples;

    /// <summary>Marks the previous host probe done (if any) and names the next.</summary>
    public void HostStep(string phase) => Set(phase, () =>
    {
        if (_phase.StartsWith("memory", StringComparison.Ordinal) || _phase.StartsWith("CPU", StringComparison.Ordinal)) _hostStepsDone++;
    });

    public void Finish() => Set("done", () =>
    {
        _swapFraction = 1;
        _hostStepsDone = HostSteps;
    });

    private void Set(string phase, Action change)
    {
        change();
        _phase = phase;
        sink?.Report(new CalibrationProgress(phase, Done, Math.Max(Total, Done)));
    }
}

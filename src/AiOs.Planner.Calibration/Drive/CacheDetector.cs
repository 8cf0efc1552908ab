using System.Globalization;
using AiOs.Planner.Units;
using MathNet.Numerics.Statistics;

namespace AiOs.Planner.Calibration.Drive;

/// <summary>What cache detection concluded: a note for the profile, and the sustained write rate when writes fell off.</summary>
public sealed record CacheFinding(string? Note, Bandwidth? SustainedWrite);

/// <summary>
/// Detects a write cache (a host's page cache behind a virtual disk, an SSD's SLC cache) from two signs:
/// the write rate falling as the test file grows (the layout pass, segment by segment), and writes
/// running clearly faster than reads, which a bare flash drive does not do.
/// </summary>
public static class CacheDetector
{
    /// <summary>Writes this much faster than reads point to a cache.</summary>
    public const double WriteOverReadRatio = 1.3;
    /// <summary>The last quarter of the layout this much slower than the first quarter is a fall-off.</summary>
    public const double FallOffRatio = 0.7;

    /// <summary>Examines the layout segments (in file order) and the fitted peaks.</summary>
    public static CacheFinding Detect(IReadOnlyList<ProbeResult> layoutSegments, Bandwidth readPeak, Bandwidth writePeak, Bytes fileSize)
    {
        ArgumentNullException.ThrowIfNull(layoutSegments);
        var notes = new List<string>();
        Bandwidth? sustained = null;
        if (layoutSegments.Count >= 4)
        {
            int q = layoutSegments.Count / 4;
            double first = Statistics.Median(layoutSegments.Take(q).Select(s => s.Rate.BytesPerSecond));
            double last = Statistics.Median(layoutSegments.Skip(layoutSegments.Count - q).Select(s => s.Rate.BytesPerSecond));
            if (last < FallOffRatio * first)
            {
                int knee = layoutSegments.ToList().FindIndex(s => s.Rate.BytesPerSecond < (first + last) / 2);
                var before = new Bytes(layoutSegments.Take(Math.Max(knee, 0)).Sum(s => s.Moved.Value));
                sustained = new Bandwidth(last);
                notes.Add(string.Create(CultureInfo.InvariantCulture,
                    $"writes fell from {first / 1e9:0.00} to {last / 1e9:0.00} GB/s after about {before} of a {fileSize} test file: a write cache of about that size; the write rate is the sustained one"));
            }
        }
        if (writePeak.BytesPerSecond > WriteOverReadRatio * readPeak.BytesPerSecond)
            notes.Add(string.Create(CultureInfo.InvariantCulture,
                $"writes ({writePeak.GBps:0.00} GB/s) ran faster than reads ({readPeak.GBps:0.00} GB/s): a write-back cache (host or drive) is absorbing writes, so sustained writes larger than it may be slower"));
        return new CacheFinding(notes.Count == 0 ? null : string.Join("; ", notes), sustained);
    }
}

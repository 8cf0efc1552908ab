using AiOs.Planner.Descriptions;
using AiOs.Planner.Learning;

namespace AiOs.Planner.Hardware;

/// <summary>
/// The ranges a hardware profile's figures must lie in. Upper bounds sit far above any machine built (a PiB of
/// RAM, 16 TiB per GPU, 100 TB/s links) and keep every byte count in 64 bits; lower bounds on rates keep the
/// simulator's times (integer nanoseconds, 292 years at most) from overflowing when a plan moves petabytes.
/// </summary>
public static class HardwareBounds
{
    public const int MaxNodes = 65_536;
    public const int MaxGpusPerNode = 1024;
    public const double MaxGpuMemoryGib = 16_384;
    /// <summary>Device or host memory bandwidth, GB/s: 100 MB/s to 1 PB/s.</summary>
    public const double MinMemoryGbps = 0.1, MaxMemoryGbps = 1e6;
    /// <summary>GPU dense rate, TFLOP/s: 1 GFLOP/s to 1 EFLOP/s.</summary>
    public const double MinGpuTflops = 1e-3, MaxGpuTflops = 1e6;
    public const int MaxPcieGen = 16, MaxLanes = 64;
    /// <summary>Any link or drive rate, GB/s: 1 MB/s to 100 TB/s.</summary>
    public const double MinLinkGbps = 1e-3, MaxLinkGbps = 1e5;
    /// <summary>Drive peak rate, GB/s: from 1 MB/s.</summary>
    public const double MinDriveGbps = 1e-3;
    /// <summary>Latencies and fixed overheads, µs: at most 10 s.</summary>
    public const double MaxLatencyUs = 1e7;
    public const int MaxCores = 65_536;
    /// <summary>Host RAM per node, GiB: at most 1 PiB.</summary>
    public const double MaxRamGib = 1 << 20;
    public const double MinAdamParamsPerS = 1e3, MaxAdamParamsPerS = 1e13;
    /// <summary>A CPU optimizer call's fixed cost, seconds: at most 1 s (the H100 VM's worst measured was about 1.2 ms).</summary>
    public const double MaxOptimizerCallOverheadS = 1;
    /// <summary>CPU matmul rate, GFLOP/s: 10 MFLOP/s to 10 PFLOP/s.</summary>
    public const double MinCpuGflops = 1e-2, MaxCpuGflops = 1e7;
    public const int MaxDrives = 1024;
    /// <summary>Capacity of one drive, GB: at most 1 PB.</summary>
    public const double MaxDriveCapacityGb = 1e6;
    /// <summary>All drives of a node together, GB: at most 1 EB (the sum stays in 64-bit bytes).</summary>
    public const double MaxNodeDriveCapacityGb = 1e9;
    /// <summary>Half-saturation points of a drive curve, KiB: at most 1 TiB.</summary>
    public const double MaxHalfKib = 1 << 30;
    /// <summary>AIO block size in bytes (1 GiB), queue depth and threads: the same limits settings have.</summary>
    public const long MaxAioBlockBytes = 1L << 30;
    public const int MaxAioQueueDepth = 1024, MaxAioThreads = 256;
    public const double MinSwapFactor = 1e-3, MaxSwapFactor = 100;

    /// <summary>Checks a profile's learned correction: a trainer, a run count, finite feature ranges and a margin.</summary>
    internal static void ValidateCorrection(ValidationProblems p, string at, StepCorrectionSpec c)
    {
        if (string.IsNullOrWhiteSpace(c.Trainer)) p.Add(at + ".trainer", "must not be empty");
        p.Positive(at + ".runs", c.Runs, 10_000_000);
        p.NonNegative(at + ".margin", c.Margin, 10);
        if (c.Ranges is null)
        {
            p.Add(at + ".ranges", "is required");
            return;
        }
        for (int i = 0; i < c.Ranges.Count; i++)
        {
            var r = c.Ranges[i];
            if (r is null) { p.Add($"{at}.ranges[{i}]", "must be an object, not null"); continue; }
            if (!double.IsFinite(r.Min) || !double.IsFinite(r.Max) || r.Min > r.Max)
                p.Add($"{at}.ranges[{i}]", $"needs finite min ≤ max (found {r.Min:G}, {r.Max:G})");
        }
    }
}

using AiOs.Planner.Calibration.Drive;
using AiOs.Planner.Hardware;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration;

/// <summary>How thorough a calibration is: <see cref="Quick"/> ≤ 30 s, <see cref="Default"/> ≤ 2 min on the CI VM, <see cref="Full"/> longer and larger.</summary>
public enum CalibrationMode
{
    Quick,
    Default,
    Full,
}

/// <summary>What to calibrate and where to start from.</summary>
public sealed record CalibrationOptions
{
    /// <summary>Folder on the drive to measure (the test file goes here).</summary>
    public required string NvmePath { get; init; }
    /// <summary>Quick, default or full: file size and sample lengths.</summary>
    public CalibrationMode Mode { get; init; } = CalibrationMode.Default;
    /// <summary>Profile to update; its GPU, links and other sections are kept. Null starts a CPU-only profile.</summary>
    public HardwareProfile? Base { get; init; }
    /// <summary>Name of the written profile; null keeps the base's name or uses "calibrated".</summary>
    public string? Name { get; init; }
    /// <summary>Date stamped on the profile and its figures (ISO 8601); passed in so tests and reruns are reproducible.</summary>
    public required string Date { get; init; }
    /// <summary>Version of the tool that calibrates, recorded in the profile (the CLI passes its own).</summary>
    public string ToolVersion { get; init; } = "unknown";
    /// <summary>Test-file size; null takes the mode's.</summary>
    public Bytes? TestFileSize { get; init; }
}

/// <summary>The sizes and durations of one mode.</summary>
public sealed record ModeSettings
{
    /// <summary>Size of the test file when the drive has room.</summary>
    public required Bytes TestFileSize { get; init; }
    /// <summary>Below this the test file is too small to mean anything, and calibration stops.</summary>
    public required Bytes MinTestFileSize { get; init; }
    /// <summary>Segments of the layout pass, whose rates reveal a write cache.</summary>
    public int LayoutSegments { get; init; } = 16;
    /// <summary>What the drive sweep may try and how long each sample runs.</summary>
    public required SweepPlan Sweep { get; init; }
    /// <summary>Size of each memory-copy buffer (far above any CPU cache).</summary>
    public required Bytes MemcpySize { get; init; }
    /// <summary>Parameters per CPU Adam step in the Adam probe: in every mode far beyond any CPU cache, as a model's optimizer state is.</summary>
    public required long AdamParameters { get; init; }
    /// <summary>How long each memory-copy and Adam measurement runs.</summary>
    public required TimeSpan HostProbeDuration { get; init; }

    /// <summary>
    /// How many times the last-level cache the host probes' working sets span (<see cref="SizedFor"/>), as a training step's
    /// state does. A scan a few times larger than the cache can still hit it in part: the 64 M-parameter Adam probe (1 GiB
    /// of state on the bf16 path) measured 5.3 G/s on an H100 VM whose Xeon has 300 MiB of L3, and the engine, walking
    /// 12 GB of state once per step, 4.2–4.3 (0.81×) on the same VM minutes later; the gradient-sum probe (384 MiB) read
    /// 106–158 GB/s against 45–63 inside the steps. The probes also map their buffers as the engine does (huge pages).
    /// </summary>
    public const int CacheMultiple = 16;

    /// <summary>
    /// The most parameters <see cref="SizedFor"/> gives the Adam probe: 512 M, 8 GiB of state, 16 times a 512 MiB cache (a
    /// two-socket host with gigabytes of L3 would otherwise walk tens of gigabytes on one thread, seconds per pass).
    /// </summary>
    public const long MaxSizedAdamParameters = 512L << 20;

    /// <summary>
    /// These settings with the Adam, gradient-sum and memory-copy probes grown to <see cref="CacheMultiple"/> times
    /// <paramref name="lastLevelCache"/> (16 bytes of Adam state per parameter, two copy buffers), never below the mode's
    /// sizes, and held to a quarter of <paramref name="available"/> memory; unchanged where the cache is unknown.
    /// </summary>
    public ModeSettings SizedFor(Bytes? lastLevelCache, Bytes? available)
    {
        if (lastLevelCache is not { } cache || cache <= Bytes.Zero) return this;
        // Sized at the fp32 state's 16 B per parameter, so the figures stay comparable with earlier calibrations; the fp16
        // probe holds 18 B (its fp16 copy), at most 28% of the available memory rather than a quarter.
        const long stateBytesPerParameter = 16, round = 1L << 20;
        long parameters = Measurement.HostMemory.ElementsPastCache(cache, available, stateBytesPerParameter, CacheMultiple, AdamParameters, MaxSizedAdamParameters);
        // Two copy buffers of 8 caches each: 16 caches together, at most 4 GiB each.
        long copy = Measurement.HostMemory.ElementsPastCache(cache, available, 2, CacheMultiple, MemcpySize.Value, Bytes.FromGiB(4).Value);
        return this with { AdamParameters = (parameters + round - 1) / round * round, MemcpySize = new Bytes(copy).AlignUp(round) };
    }

    /// <summary>The settings of <paramref name="mode"/>.</summary>
    public static ModeSettings For(CalibrationMode mode) => mode switch
    {
        CalibrationMode.Quick => new()
        {
            TestFileSize = Bytes.FromGiB(1),
            MinTestFileSize = Bytes.FromMiB(256),
            LayoutSegments = 8,
            Sweep = new SweepPlan { SampleDuration = TimeSpan.FromMilliseconds(120), SampleMinBytes = Bytes.FromMiB(32), Threads = [1, 2, 4] },
            MemcpySize = Bytes.FromMiB(256),
            // As the default's: a quick calibration still writes the profile plans are priced from, and 4 M parameters
            // (80 MB with their gradients) stayed in a GPU host's L3: CPU Adam measured 17–18 G/s there against 4.1–4.3
            // from 64 M, and offloaded steps were planned 32–53% fast (H100 VM, 2026-12-06).
            AdamParameters = 64 << 20,
            HostProbeDuration = TimeSpan.FromMilliseconds(300),
        },
        CalibrationMode.Full => new()
        {
            TestFileSize = Bytes.FromGiB(16),
            MinTestFileSize = Bytes.FromGiB(4),
            LayoutSegments = 32,
            Sweep = new SweepPlan { SampleDuration = TimeSpan.FromSeconds(2), SampleMinBytes = Bytes.FromMiB(512), Patience = 3 },
            MemcpySize = Bytes.FromMiB(512),
            AdamParameters = 128 << 20,
            HostProbeDuration = TimeSpan.FromSeconds(2),
        },
        _ => new()
        {
            TestFileSize = Bytes.FromGiB(8),
            MinTestFileSize = Bytes.FromGiB(2),
            Sweep = new SweepPlan { SampleDuration = TimeSpan.FromMilliseconds(600), SampleMinBytes = Bytes.FromMiB(128) },
            MemcpySize = Bytes.FromMiB(256),
            // 64 M parameters: 256 MiB each of weights, gradients and moments, past any CPU cache, as a real
            // model's optimizer state is (16 M fit a large L3 and measured twice the rate a 1.5 B-parameter update got).
            AdamParameters = 64 << 20,
            HostProbeDuration = TimeSpan.FromSeconds(1),
        },
    };
}

using AiOs.Planner.Descriptions;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Hardware;

/// <summary>
/// NVMe drives of one model in a node. <see cref="Count"/> identical drives are striped (RAID 0, or one
/// swap folder per drive) and aggregate their throughput.
/// </summary>
public sealed record DriveSpec
{
    public string Model { get; init; } = "";
    public int Count { get; init; } = 1;
    /// <summary>Capacity of each drive, GB (decimal, as sold).</summary>
    public required Figure CapacityGb { get; init; }
    /// <summary>PCIe generation of the drive's link, for the report; 0 when unknown (e.g. a virtual disk).</summary>
    public int PcieGen { get; init; }
    public required DriveDirection Read { get; init; }
    public required DriveDirection Write { get; init; }
    /// <summary>Set by calibration when writes were absorbed by a cache faster than the drive (host cache, SLC cache).</summary>
    public string? CacheNote { get; init; }

    public Bytes Capacity => Bytes.FromGB(CapacityGb.Value * Count);

    /// <summary>Aggregate read throughput of all drives for the given aio settings.</summary>
    public Bandwidth ReadRate(AioSettings aio) => Read.Throughput(aio) * Count;

    /// <summary>Aggregate write throughput of all drives for the given aio settings.</summary>
    public Bandwidth WriteRate(AioSettings aio) => Write.Throughput(aio) * Count;

    internal void Validate(ValidationProblems p, string at)
    {
        p.Positive(at + ".count", Count);
        p.Positive(at + ".capacity_gb", CapacityGb.Value);
        Read.Validate(p, at + ".read");
        Write.Validate(p, at + ".write");
    }
}

/// <summary>One sample of a drive sweep: settings and the measured rate, GB/s (decimal).</summary>
public sealed record DriveSample(long BlockSize, int QueueDepth, int Threads, double Gbps)
{
    /// <summary>These settings as <see cref="AioSettings"/>.</summary>
    public AioSettings Settings => new() { BlockSize = new Bytes(BlockSize), QueueDepth = QueueDepth, IntraOpParallelism = Threads };
}

/// <summary>
/// Throughput of one direction of a drive as a function of the aio settings:
/// <c>peak · x / (x + half_inflight) · b / (b + half_block)</c>, where x = block_size × queue_depth ×
/// intra_op_parallelism is the bytes in flight and b the block size. The first factor is Little's law
/// (half_inflight = peak × latency); the second is the cost per request (half_block = peak ÷ the drive's
/// request rate), 1 when <see cref="HalfBlockKib"/> is absent. Calibration fits both to its samples; a
/// datasheet drive gives the sequential peak and a typical half-saturation point.
/// </summary>
public sealed record DriveDirection
{
    /// <summary>Sustained sequential throughput at saturation, GB/s.</summary>
    public required Figure PeakGbps { get; init; }
    /// <summary>Bytes in flight at which throughput reaches half the peak, KiB.</summary>
    public Figure HalfInflightKib { get; init; } = new(256);
    /// <summary>Block size at which the per-request cost halves throughput, KiB (peak ÷ requests per second); absent means no such cost.</summary>
    public Figure? HalfBlockKib { get; init; }
    /// <summary>Goodness of fit (R²) of the curve to <see cref="Samples"/>, when fitted. Near 0 also when the drive is flat (nothing to explain).</summary>
    public double? RSquared { get; init; }
    /// <summary>Root-mean-square error of the fit, GB/s, when fitted.</summary>
    public double? RmseGbps { get; init; }
    /// <summary>Measured points the curve was fitted to.</summary>
    public IReadOnlyList<DriveSample>? Samples { get; init; }

    /// <summary>Predicted throughput of one drive for these settings.</summary>
    public Bandwidth Throughput(AioSettings aio)
    {
        double inflight = (double)aio.BlockSize.Value * aio.QueueDepth * aio.IntraOpParallelism;
        double half = HalfInflightKib.Value * Bytes.KiBValue;
        double block = aio.BlockSize.Value;
        double halfBlock = (HalfBlockKib?.Value ?? 0) * Bytes.KiBValue;
        return Bandwidth.FromGBps(PeakGbps.Value * inflight / (inflight + half) * block / (block + halfBlock));
    }

    internal void Validate(ValidationProblems p, string at)
    {
        p.Positive(at + ".peak_gbps", PeakGbps.Value);
        p.NonNegative(at + ".half_inflight_kib", HalfInflightKib.Value);
        if (HalfBlockKib is not null) p.NonNegative(at + ".half_block_kib", HalfBlockKib.Value);
    }
}

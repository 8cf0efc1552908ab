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
    /// <summary>How the drive moves training's swap traffic against its sequential curves, by working-set size (measured; absent on datasheet drives).</summary>
    public SwapBehaviour? Swap { get; init; }

    public Bytes Capacity => Bytes.FromGB(CapacityGb.Value * Count);

    /// <summary>Aggregate read throughput of all drives for the given aio settings.</summary>
    public Bandwidth ReadRate(AioSettings aio) => Read.Throughput(aio) * Count;

    /// <summary>Aggregate write throughput of all drives for the given aio settings.</summary>
    public Bandwidth WriteRate(AioSettings aio) => Write.Throughput(aio) * Count;

    /// <summary>
    /// Aggregate rate of swap reads when the node's swap files hold <paramref name="workingSet"/> (striped over
    /// the drives): the read curve times <see cref="Swap"/>'s read factor at each drive's share. What the
    /// simulator charges them.
    /// </summary>
    public Bandwidth SwapReadRate(AioSettings aio, Bytes workingSet) =>
        ReadRate(aio) * (Swap?.ReadFactorAt(PerDrive(workingSet)) ?? 1);

    /// <summary>Aggregate rate of swap writes for <paramref name="workingSet"/>: the write curve times <see cref="Swap"/>'s write factor.</summary>
    public Bandwidth SwapWriteRate(AioSettings aio, Bytes workingSet) =>
        WriteRate(aio) * (Swap?.WriteFactorAt(PerDrive(workingSet)) ?? 1);

    private Bytes PerDrive(Bytes workingSet) => new(workingSet.Value / Math.Max(1, Count));

    internal void Validate(ValidationProblems p, string at)
    {
        p.Positive(at + ".count", Count, HardwareBounds.MaxDrives);
        p.Positive(at + ".capacity_gb", CapacityGb.Value, HardwareBounds.MaxDriveCapacityGb, " GB");
        p.InRange(at + ".pcie_gen", PcieGen, 0, HardwareBounds.MaxPcieGen);
        if (Read is null) p.Add(at + ".read", "is required");
        else Read.Validate(p, at + ".read");
        if (Write is null) p.Add(at + ".write", "is required");
        else Write.Validate(p, at + ".write");
        Swap?.Validate(p, at + ".swap");
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
        p.InRange(at + ".peak_gbps", PeakGbps.Value, HardwareBounds.MinDriveGbps, HardwareBounds.MaxLinkGbps, " GB/s");
        p.NonNegative(at + ".half_inflight_kib", HalfInflightKib.Value, HardwareBounds.MaxHalfKib, " KiB");
        if (HalfBlockKib is not null) p.NonNegative(at + ".half_block_kib", HalfBlockKib.Value, HardwareBounds.MaxHalfKib, " KiB");
        if (RSquared is { } r2 && !double.IsFinite(r2)) p.Add(at + ".r_squared", $"must be a finite number (found {r2})");
        if (RmseGbps is { } rmse) p.NonNegative(at + ".rmse_gbps", rmse, HardwareBounds.MaxLinkGbps, " GB/s");
        for (int i = 0; i < (Samples?.Count ?? 0); i++)
        {
            var sample = Samples![i];
            string s = $"{at}.samples[{i}]";
            if (sample is null) { p.Add(s, "must be an object, not null"); continue; }
            p.InRange(s + ".block_size", sample.BlockSize, 1, HardwareBounds.MaxAioBlockBytes, " bytes");
            p.Positive(s + ".queue_depth", sample.QueueDepth, HardwareBounds.MaxAioQueueDepth);
            p.Positive(s + ".threads", sample.Threads, HardwareBounds.MaxAioThreads);
            p.NonNegative(s + ".gbps", sample.Gbps, HardwareBounds.MaxLinkGbps, " GB/s");
        }
    }
}

/// <summary>One swap-cycle measurement: for a working set of this size, reads and rewrites ran at these multiples of the curves.</summary>
public sealed record SwapPoint(double WorkingSetGib, double ReadFactor, double WriteFactor);

/// <summary>
/// Training's swap traffic against the drive's sequential curves at the same settings, measured by
/// <c>aios calibrate</c> at several working-set sizes: it writes part of its test file, then reads each chunk
/// and writes it back, as the engine reads a sub-group's optimizer state or a layer's parameters written the
/// step before and writes the update back. Factors above 1 where a drive or a virtual disk's host serves
/// recent writes from a cache (more for working sets the cache holds) or rewrites cost less than cold writes;
/// about 1 on a bare NVMe drive.
/// </summary>
public sealed record SwapBehaviour
{
    /// <summary>Measured points, by working-set size ascending.</summary>
    public required IReadOnlyList<SwapPoint> Points { get; init; }
    /// <summary>When measured (ISO 8601).</summary>
    public string? Date { get; init; }
    /// <summary>How measured.</summary>
    public string? Method { get; init; }

    /// <summary>The read factor for a drive whose swap files hold <paramref name="workingSet"/> (see <see cref="At"/>).</summary>
    public double ReadFactorAt(Bytes workingSet) => At(workingSet, p => p.ReadFactor);

    /// <summary>The write factor for a drive whose swap files hold <paramref name="workingSet"/> (see <see cref="At"/>).</summary>
    public double WriteFactorAt(Bytes workingSet) => At(workingSet, p => p.WriteFactor);

    /// <summary>
    /// A factor for <paramref name="workingSet"/>: linear in log size between points; below the smallest point
    /// the smallest's, above the largest the largest's (where a cache is involved a larger working set may be
    /// slower still: calibrate with a test file as large as the swap files, --test-size).
    /// </summary>
    private double At(Bytes workingSet, Func<SwapPoint, double> factor)
    {
        var points = Points.Where(p => p.WorkingSetGib > 0 && factor(p) > 0).OrderBy(p => p.WorkingSetGib).ToList();
        if (points.Count == 0) return 1;
        double gib = workingSet.Value / (double)Bytes.GiBValue;
        if (gib <= points[0].WorkingSetGib) return factor(points[0]);
        if (gib >= points[^1].WorkingSetGib) return factor(points[^1]);
        int i = points.FindIndex(p => p.WorkingSetGib >= gib);
        var (a, b) = (points[i - 1], points[i]);
        double t = Math.Log(gib / a.WorkingSetGib) / Math.Log(b.WorkingSetGib / a.WorkingSetGib);
        return factor(a) + t * (factor(b) - factor(a));
    }

    internal void Validate(ValidationProblems p, string at)
    {
        if (Points is null || Points.Count == 0)
        {
            p.Add(at + ".points", "is missing or empty; remove swap or recalibrate");
            return;
        }
        for (int i = 0; i < Points.Count; i++)
        {
            if (Points[i] is null) { p.Add(at + $".points[{i}]", "must be an object, not null"); continue; }
            p.Positive(at + $".points[{i}].working_set_gib", Points[i].WorkingSetGib, HardwareBounds.MaxDriveCapacityGb, " GiB");
            // A factor multiplies the drive's curve: 100× would claim a cache faster than any memory behind a drive.
            p.InRange(at + $".points[{i}].read_factor", Points[i].ReadFactor, HardwareBounds.MinSwapFactor, HardwareBounds.MaxSwapFactor);
            p.InRange(at + $".points[{i}].write_factor", Points[i].WriteFactor, HardwareBounds.MinSwapFactor, HardwareBounds.MaxSwapFactor);
        }
    }
}

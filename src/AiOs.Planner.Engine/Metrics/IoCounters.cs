using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Metrics;

/// <summary>Where bytes move to or from, as the engine counts them.</summary>
public enum StorageTier
{
    /// <summary>The compute device's memory (for the CPU device: the working tensors).</summary>
    Device,
    /// <summary>Host RAM buffers holding offloaded state.</summary>
    Cpu,
    /// <summary>Swap files under the NVMe path.</summary>
    Nvme,
}

/// <summary>
/// Bytes read from and written to each tier since the counters started, and bytes copied to the device
/// (parameter uploads) and from it (gradient downloads) in the training precision.
/// </summary>
public sealed record IoTotals(Bytes CpuRead, Bytes CpuWritten, Bytes NvmeRead, Bytes NvmeWritten, Bytes Uploaded, Bytes Downloaded)
{
    /// <summary>The difference <c>this − earlier</c> (one step's traffic).</summary>
    public IoTotals Minus(IoTotals earlier) => new(CpuRead - earlier.CpuRead, CpuWritten - earlier.CpuWritten, NvmeRead - earlier.NvmeRead,
        NvmeWritten - earlier.NvmeWritten, Uploaded - earlier.Uploaded, Downloaded - earlier.Downloaded);
}

/// <summary>Thread-safe byte counters per tier, updated by I/O and optimizer threads.</summary>
public sealed class IoCounters
{
    private long _cpuRead, _cpuWritten, _nvmeRead, _nvmeWritten, _uploaded, _downloaded;

    /// <summary>Counts parameter bytes copied to the device.</summary>
    public void Upload(long bytes) => Interlocked.Add(ref _uploaded, bytes);

    /// <summary>Counts gradient bytes copied from the device.</summary>
    public void Download(long bytes) => Interlocked.Add(ref _downloaded, bytes);

    /// <summary>Counts <paramref name="bytes"/> read from <paramref name="tier"/> (device reads are not counted).</summary>
    public void Read(StorageTier tier, long bytes)
    {
        if (tier == StorageTier.Cpu) Interlocked.Add(ref _cpuRead, bytes);
        else if (tier == StorageTier.Nvme) Interlocked.Add(ref _nvmeRead, bytes);
    }

    /// <summary>Counts <paramref name="bytes"/> written to <paramref name="tier"/>.</summary>
    public void Written(StorageTier tier, long bytes)
    {
        if (tier == StorageTier.Cpu) Interlocked.Add(ref _cpuWritten, bytes);
        else if (tier == StorageTier.Nvme) Interlocked.Add(ref _nvmeWritten, bytes);
    }

    /// <summary>The totals now.</summary>
    public IoTotals Snapshot() => new(
        new Bytes(Interlocked.Read(ref _cpuRead)), new Bytes(Interlocked.Read(ref _cpuWritten)),
        new Bytes(Interlocked.Read(ref _nvmeRead)), new Bytes(Interlocked.Read(ref _nvmeWritten)),
        new Bytes(Interlocked.Read(ref _uploaded)), new Bytes(Interlocked.Read(ref _downloaded)));
}

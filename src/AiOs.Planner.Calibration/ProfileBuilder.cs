using System.Globalization;
using System.Numerics;
using AiOs.Planner.Calibration.Drive;
using AiOs.Planner.Calibration.Machine;
using AiOs.Planner.Hardware;
using AiOs.Planner.Optim;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration;

/// <summary>
/// Turns measurements into a profile. With a base profile, only the CPU, the drives and the machine facts
/// change: the GPU, host link, GPU link and network sections are kept as they were, and so are the CPU's
/// compute figures (matmul rates, layer compute), which <c>aios calibrate-cpu</c> measures. Every calibrated figure
/// carries source "measured", the date and its method.
/// </summary>
public static class ProfileBuilder
{
    /// <summary>The calibrated profile.</summary>
    public static HardwareProfile Build(CalibrationOptions options, MachineFacts machine, DriveCalibration drive, HostCalibration host)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(machine);
        ArgumentNullException.ThrowIfNull(drive);
        ArgumentNullException.ThrowIfNull(host);
        string date = options.Date;
        Figure Measured(double value, string method) => Figure.Measured(Math.Round(value, 4), date, method);
        string I(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

        var (memory, adam, adamBf16, adamFp16, adam8, call) = HostFigures(host, date);
        var cpu = new CpuSpec
        {
            Model = machine.CpuModel,
            Cores = machine.Cores,
            RamGib = Measured(machine.Ram.GiB, "/proc/meminfo MemTotal"),
            MemoryBandwidthGbps = memory,
            AdamParamsPerS = adam,
            AdamBf16ParamsPerS = adamBf16,
            AdamFp16ParamsPerS = adamFp16,
            Adam8ParamsPerS = adam8,
            OptimizerCallOverheadS = call,
            HostAddGbps = GradientSumsFigure(host, date),
        };
        // The compute figures come from `aios calibrate-cpu`, not from this run: keep the base's.
        if (options.Base?.Cpu is { } kept)
            cpu = cpu with { MatmulGflops = kept.MatmulGflops, MatmulGflopsBf16 = kept.MatmulGflopsBf16, LayerCompute = kept.LayerCompute, LayerComputeBf16 = kept.LayerComputeBf16 };
        var baseDrive = options.Base?.Drives.Count > 0 ? options.Base.Drives[0] : null;
        var storage = machine.Storage;
        string how = I($"aios calibrate: sweep of block size, queue depth and threads over a {drive.TestFileSize} test file{(drive.DirectIo ? " with O_DIRECT" : " (buffered: O_DIRECT unsupported)")}, kernel AIO; fitted peak");
        var write = Direction(drive.WriteCurve, drive.WriteSamples, date, how);
        if (drive.Cache.SustainedWrite is { } sustained && sustained.GBps < write.PeakGbps.Value)
            write = write with { PeakGbps = Measured(sustained.GBps, I($"sustained write rate after a write cache filled (layout of the {drive.TestFileSize} test file); fitted peak was {drive.WriteCurve.PeakGbps:0.00} GB/s")) };
        var read = Direction(drive.ReadCurve, drive.ReadSamples, date, how);
        SwapBehaviour? swap = null;
        if (drive.Swap.Count > 0)
        {
            var at = drive.Swap[0].Settings;
            string cycles = string.Join("; ", drive.Swap.Select(m => I($"{m.WorkingSet}: reads {m.ReadRate.GBps:0.000}, rewrites {m.WriteRate.GBps:0.000} GB/s")));
            swap = new SwapBehaviour
            {
                Points = drive.Swap.Select(m => new SwapPoint(Math.Round(m.WorkingSet.Value / (double)Bytes.GiBValue, 3),
                    Factor(m.ReadRate, read, at), Factor(m.WriteRate, write, at))).ToList(),
                Date = date,
                Method = I($"aios calibrate swap cycles: part of the test file written, then each {drive.Swap[0].Chunk} chunk read and written back, {drive.Swap[0].Cycles} cycles, through the engine's swap I/O (synchronous direct pieces, queue depth × threads in flight), block {at.BlockSize}, queue depth {at.QueueDepth}, {at.IntraOpParallelism} thread(s); factors over the curves' {read.Throughput(at).GBps:0.000} GB/s read and {write.Throughput(at).GBps:0.000} GB/s write at those settings ({cycles})"),
            };
        }
        var driveSpec = new DriveSpec
        {
            Model = I($"{DriveName(storage)} ({storage.FileSystem ?? "unknown filesystem"})"),
            Count = 1,
            CapacityGb = Measured(storage.Total.GB, "size of the filesystem holding --nvme-path (statvfs)"),
            PcieGen = baseDrive?.PcieGen ?? 0,
            Read = read,
            Write = write,
            CacheNote = drive.Cache.Note,
            Swap = swap,
        };
        var facts = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (k, v) in options.Base?.Machine ?? new Dictionary<string, string>()) facts[k] = v;
        foreach (var (k, v) in machine.ToMap()) facts[k] = v;
        facts["calibrated_by"] = I($"aios calibrate {options.ToolVersion} ({options.Mode.ToString().ToLowerInvariant()})");
        facts["calibration_date"] = date;

        if (options.Base is { } b)
            return b with { Name = options.Name ?? b.Name, Description = Stamped(b.Description, date), Date = date, Cpu = cpu, Drives = [driveSpec], Machine = facts };
        return new HardwareProfile
        {
            Name = options.Name ?? "calibrated",
            Description = I($"Measured by aios calibrate on {date}: {machine.CpuModel}, {machine.Cores} cores, {machine.Ram} RAM, drive {driveSpec.Model}. No GPU section: calibrate with --base PROFILE to keep one."),
            Source = FigureSource.Measured,
            Date = date,
            Nodes = 1,
            GpusPerNode = 0,
            Cpu = cpu,
            Drives = [driveSpec],
            Machine = facts,
        };
    }

    /// <summary>
    /// <paramref name="profile"/> with only the host measurements replaced (memory copy, both CPU Adam figures): drives, GPU,
    /// links, RAM and the CPU's compute figures are kept. For re-measuring the CPU of a profile without its drive sweep.
    /// </summary>
    public static HardwareProfile WithHost(HardwareProfile profile, HostCalibration host, string date)
    {
        ArgumentNullException.ThrowIfNull(profile);
        ArgumentNullException.ThrowIfNull(host);
        var (memory, adam, adamBf16, adamFp16, adam8, call) = HostFigures(host, date);
        var facts = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (k, v) in profile.Machine ?? new Dictionary<string, string>()) facts[k] = v;
        facts["host_calibration_date"] = date;
        return profile with
        {
            Cpu = profile.Cpu with
            {
                MemoryBandwidthGbps = memory, AdamParamsPerS = adam, AdamBf16ParamsPerS = adamBf16, AdamFp16ParamsPerS = adamFp16 ?? profile.Cpu.AdamFp16ParamsPerS,
                Adam8ParamsPerS = adam8 ?? profile.Cpu.Adam8ParamsPerS,
                OptimizerCallOverheadS = call ?? profile.Cpu.OptimizerCallOverheadS, HostAddGbps = GradientSumsFigure(host, date) ?? profile.Cpu.HostAddGbps,
            },
            Machine = facts,
        };
    }

    /// <summary>The gradient-sum pass's traffic rate of <paramref name="host"/>, if measured (<c>cpu.host_add_gbps</c>).</summary>
    private static Figure? GradientSumsFigure(HostCalibration host, string date) => host.GradientSums is { } rate
        ? Figure.Measured(Math.Round(rate.GBps, 4), date, string.Create(CultureInfo.InvariantCulture,
            $"aios calibrate: the engine's gradient-sum pass (GradientSums.AddBf16: bf16 added into fp32 sums, {Host.GradientSumProbe.BytesPerElement} B of traffic per element) on {host.Threads} threads, in calls of up to {Host.GradientSumProbe.UnitElements:N0} elements, {Host.GradientSumProbe.BusyCores} core kept busy as the engine's launching thread keeps it"))
        : null;

    /// <summary>
    /// The memory-copy and CPU Adam figures of <paramref name="host"/>, each the better of one thread and all threads (on a shared
    /// machine all threads can lose to one), and the bf16 update's fixed cost per call (all threads, as the engine calls it).
    /// </summary>
    private static (Figure Memory, Figure Adam, Figure? AdamBf16, Figure? AdamFp16, Figure? Adam8, Figure? CallOverhead) HostFigures(HostCalibration host, string date)
    {
        Figure Measured(double value, string method) => Figure.Measured(Math.Round(value, 4), date, method);
        string I(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
        var memory = Measured(Math.Max(host.MemcpyAllThreads.GBps, host.MemcpyOneThread.GBps),
            I($"memory copy (Buffer.MemoryCopy) of large buffers, bytes copied per second, best of 1 thread ({host.MemcpyOneThread.GBps:0.00} GB/s) and {host.Threads} threads ({host.MemcpyAllThreads.GBps:0.00} GB/s)"));
        var adam = Measured(Math.Round(Math.Max(host.AdamAllThreads, host.AdamOneThread)),
            I($"aios CpuAdam (AdamW, fp32 master weights, fp32 gradients, no bf16 copy: 32 B per parameter; {Vector<float>.Count}-float vectors), best of 1 thread ({host.AdamOneThread:0.###e0}/s) and {host.Threads} threads ({host.AdamAllThreads:0.###e0}/s)"));
        var adamBf16 = host.AdamBf16AllThreads is { } bf16All
            ? Measured(Math.Round(Math.Max(bf16All, host.AdamBf16OneThread ?? 0)),
                I($"aios CpuAdam.StepBf16Gradients, the engine's bf16 update (fp32 master weights, m, v; bf16 gradients read, bf16 copy written: 28 B per parameter) on {host.AdamBf16SubGroup / (double)(1 << 20):0} M-parameter sub-groups in turn, best of 1 thread ({host.AdamBf16OneThread:0.###e0}/s) and {host.Threads} threads ({bf16All:0.###e0}/s)"))
            : null;
        var adamFp16 = host.AdamFp16AllThreads is { } fp16All
            ? Measured(Math.Round(Math.Max(fp16All, host.AdamFp16OneThread ?? 0)),
                I($"aios CpuAdam.Step with the fp16 copy, the engine's fp16 update (fp32 master weights, m, v; fp32 gradient sums read, fp16 copy written: 30 B per parameter) on {host.AdamBf16SubGroup / (double)(1 << 20):0} M-parameter sub-groups in turn, best of 1 thread ({host.AdamFp16OneThread:0.###e0}/s) and {host.Threads} threads ({fp16All:0.###e0}/s)"))
            : null;
        var adam8 = host.Adam8AllThreads is { } eightAll
            ? Measured(Math.Round(Math.Max(eightAll, host.Adam8OneThread ?? 0)),
                I($"aios BlockwiseAdam.Step, the engine's --optimizer-state 8bit update (fp32 master weights and gradients; m and v one code each, a scale per {BlockwiseQuantization.BlockSize} values; bf16 copy written: 18 B per parameter) on {host.AdamBf16SubGroup / (double)(1 << 20):0} M-parameter sub-groups in turn, best of 1 thread ({host.Adam8OneThread:0.###e0}/s) and {host.Threads} threads ({eightAll:0.###e0}/s)"))
            : null;
        var call = host.AdamCallFit is { } fit
            ? Figure.Measured(Math.Round(fit.PerCallSeconds, 9),
                date, I($"fit t = a + b·n (least relative squares) to the median time of one aios CpuAdam.StepBf16Gradients call on {host.Threads} threads at {string.Join(", ", host.AdamCalls.Select(c => c.Elements >= 1 << 20 ? $"{c.Elements >> 20} M" : $"{c.Elements >> 10} K"))} parameters (state walked through, past the caches): a per call, b = {fit.SecondsPerElement * 1e9:0.###} ns per parameter ({fit.ElementsPerSecond:0.###e0}/s)"))
            : null;
        return (memory, adam, adamBf16, adamFp16, adam8, call);
    }

    private const string StampPrefix = " [CPU, memory and drive calibrated ";

    /// <summary>The base's description with one calibration stamp (replacing an earlier one), so it never claims figures are estimates once they are measured.</summary>
    internal static string Stamped(string? description, string date)
    {
        string text = description ?? "";
        int at = text.IndexOf(StampPrefix, StringComparison.Ordinal);
        if (at >= 0) text = text[..at];
        return $"{text}{StampPrefix}{date} by aios calibrate; those figures carry their method.]".TrimStart();
    }

    /// <summary>The drive's model from /sys, else a name from the device: virtio disks (vd*) report no model.</summary>
    internal static string DriveName(Storage.StorageFacts storage) =>
        storage.DeviceModel is { Length: > 0 } model ? model
        : storage.BlockDevice is { } dev ? (dev.StartsWith("vd", StringComparison.Ordinal) ? $"virtio disk {dev}" : dev)
        : "unknown drive";

    /// <summary>A swap rate over the curve's rate at the probe's settings, rounded (what the simulator multiplies the curve by).</summary>
    internal static double Factor(Bandwidth swapRate, DriveDirection curve, AioSettings settings) =>
        Math.Round(swapRate.BytesPerSecond / curve.Throughput(settings).BytesPerSecond, 3);

    private static DriveDirection Direction(DriveCurve curve, IReadOnlyList<DriveSample> samples, string date, string method) => new()
    {
        PeakGbps = Figure.Measured(Math.Round(curve.PeakGbps, 4), date, method),
        HalfInflightKib = Figure.Measured(Math.Round(curve.HalfInflightKib, 1), date, "fitted"),
        HalfBlockKib = curve.HalfBlockKib is { } c ? Figure.Measured(Math.Round(c, 1), date, "fitted") : null,
        RSquared = Math.Round(curve.RSquared, 4),
        RmseGbps = Math.Round(curve.RmseGbps, 4),
        Samples = samples,
    };
}

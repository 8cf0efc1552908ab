using AiOs.Planner.Engine.Native;
using AiOs.Planner.Units;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Metrics;

/// <summary>
/// Device memory the run uses, from the CUDA driver (free and total of the device, so it counts the CUDA
/// context and everything PyTorch's caching allocator has reserved: the figure <c>nvidia-smi</c> shows, and
/// what must fit on a smaller card), and an optional limit. TorchSharp 0.107 exposes no allocator statistics
/// and no memory-fraction setting, so a limit is enforced the way a smaller card would enforce it: the
/// memory above the limit is taken up front by a ballast allocation outside the caching allocator, and
/// any allocation that would cross the limit fails with CUDA's out-of-memory error.
/// </summary>
public sealed class DeviceMemory : IDisposable
{
    private readonly nint _ballast;
    private readonly long _ballastBytes;
    private long _stepPeak, _runPeak;

    private DeviceMemory(Bytes total, Bytes? limit, long ballastBytes, nint ballast)
    {
        Total = total;
        Limit = limit;
        _ballastBytes = ballastBytes;
        _ballast = ballast;
        Sample();
    }

    /// <summary>
    /// Starts watching <paramref name="device"/>, taking memory above <paramref name="limit"/> away first;
    /// null on a CPU device without a limit.
    /// </summary>
    /// <exception cref="ArgumentException">A limit on a CPU device, or one below what the process already uses.</exception>
    public static DeviceMemory? Watch(Device device, Bytes? limit)
    {
        if (device.type != TorchSharp.DeviceType.CUDA)
        {
            if (limit is not null) throw new ArgumentException("--gpu-memory-limit needs a CUDA device (--device cuda).");
            return null;
        }
        // The first CUDA tensor makes the device's primary context current on this thread.
        using (zeros(1, device: device)) { }
        var (free, total) = CudaDriver.MemoryInfo();
        if (limit is not { } cap) return new DeviceMemory(new Bytes(total), null, 0, 0);
        long used = total - free;
        if (cap.Value <= used)
            throw new ArgumentException($"--gpu-memory-limit {cap} is below the {new Bytes(used)} the CUDA context already takes on this device; raise the limit.");
        if (cap.Value >= total) return new DeviceMemory(new Bytes(total), cap, 0, 0);
        long ballast = free - (cap.Value - used);
        return new DeviceMemory(new Bytes(total), cap, ballast, ballast > 0 ? CudaDriver.Allocate(ballast) : 0);
    }

    /// <summary>The device's memory.</summary>
    public Bytes Total { get; }

    /// <summary>The budget the run is held to, if any.</summary>
    public Bytes? Limit { get; }

    /// <summary>Device memory in use now (not counting the ballast).</summary>
    public Bytes Used
    {
        get
        {
            var (free, total) = CudaDriver.MemoryInfo();
            return new Bytes(total - free - _ballastBytes);
        }
    }

    /// <summary>Records the memory in use now (cheap: allocations are visible when launched, without synchronising).</summary>
    public void Sample()
    {
        long used = Used.Value;
        if (used > _stepPeak) _stepPeak = used;
        if (used > _runPeak) _runPeak = used;
    }

    /// <summary>With <c>AIOS_DEVICE_MEMORY_TRACE</c> set: lines still to print (a diagnostic for where device and host memory go).</summary>
    private int _notesLeft = Environment.GetEnvironmentVariable("AIOS_DEVICE_MEMORY_TRACE") is { Length: > 0 } ? 240 : 0;

    /// <summary>Samples, and with <c>AIOS_DEVICE_MEMORY_TRACE</c> set prints the memory in use after <paramref name="stage"/> (and the host's resident set) to stderr (the first 240 notes: a deep model's start-up notes each unit).</summary>
    public void Note(string stage)
    {
        Sample();
        if (_notesLeft <= 0) return;
        _notesLeft--;
        // The host's resident set beside it: where a GPU run's host memory grows (issue 13's resident host RSS).
        string host = ProcessMemory.ResidentOrNull() is { } rss ? $"; host resident {new Bytes(rss)}" : "";
        Console.Error.WriteLine($"device memory after {stage}: {Used} (run peak {RunPeak}){host}");
    }

    /// <summary>The highest sample since the last call, which starts the next interval.</summary>
    public Bytes TakeStepPeak()
    {
        long peak = _stepPeak;
        _stepPeak = 0;
        return new Bytes(peak);
    }

    /// <summary>The highest sample of the run.</summary>
    public Bytes RunPeak => new(_runPeak);

    /// <summary>A clear message for an out-of-memory failure under <see cref="Limit"/>, or null when <paramref name="e"/> is not one.</summary>
    public string? Explain(Exception e)
    {
        if (!e.Message.Contains("out of memory", StringComparison.OrdinalIgnoreCase)) return null;
        string budget = Limit is { } l ? $"the --gpu-memory-limit of {l}" : $"the device's {Total}";
        return $"The run needs more device memory than {budget} (peak so far {RunPeak}). Lower --micro-batch, turn on --grad-checkpointing, " +
               "or offload parameters (--offload-params cpu|nvme); `aios plan` with the same settings shows the predicted VRAM.";
    }

    /// <summary>Gives the ballast back.</summary>
    public void Dispose()
    {
        if (_ballast != 0) CudaDriver.Free(_ballast);
    }
}

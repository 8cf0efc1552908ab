using System.Globalization;
using AiOs.Planner.Calibration.Machine;
using AiOs.Planner.Hardware;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration;

/// <summary>
/// Says plainly when the drive is too slow for NVMe offload to pay. With the optimizer on NVMe, each step
/// reads and writes back the fp32 master weights, momentum and variance (12 bytes per parameter); the CPU
/// runs Adam at the calibrated rate. When the drive cannot move those bytes as fast as Adam consumes
/// them, the step runs at drive speed.
/// </summary>
public static class StorageAdvice
{
    /// <summary>Bytes per parameter an NVMe-offloaded optimizer step reads, and writes back: fp32 weights, m, v.</summary>
    public const int OptimizerBytesPerParameter = 12;

    /// <summary>Below this sequential read rate NVMe offload is far slower than CPU offload on any machine.</summary>
    public static readonly Bandwidth Floor = Bandwidth.FromGBps(0.5);

    /// <summary>Warnings for the profile's first drive at DeepSpeed's default aio settings; empty when the drive keeps up.</summary>
    public static IReadOnlyList<string> Check(HardwareProfile profile, MachineFacts? machine)
    {
        ArgumentNullException.ThrowIfNull(profile);
        var warnings = new List<string>();
        if (profile.Drives.Count == 0) return warnings;
        var aio = new AioSettings();
        var read = profile.Drives[0].ReadRate(aio);
        var write = profile.Drives[0].WriteRate(aio);
        double adam = profile.Cpu.AdamParamsPerS.Value;
        // Seconds per billion parameters: drive (read then write) against CPU Adam.
        double driveSeconds = OptimizerBytesPerParameter * 1e9 / read.BytesPerSecond + OptimizerBytesPerParameter * 1e9 / write.BytesPerSecond;
        double adamSeconds = 1e9 / adam;
        if (read < Floor)
            warnings.Add(string.Create(CultureInfo.InvariantCulture,
                $"This drive reads at {read.GBps:0.00} GB/s: too slow for NVMe offload to pay. Offload to CPU RAM where it fits; use NVMe only when nothing else holds the model."));
        if (driveSeconds > 2 * adamSeconds)
            warnings.Add(string.Create(CultureInfo.InvariantCulture,
                $"With the optimizer on this drive, each billion parameters needs {driveSeconds:0.0} s of I/O per step ({OptimizerBytesPerParameter} B/parameter read at {read.GBps:0.00} GB/s and written at {write.GBps:0.00} GB/s) against {adamSeconds:0.0} s of CPU Adam: the step would be {driveSeconds / adamSeconds:0}× slower than with the optimizer in RAM. Keep the optimizer in CPU RAM if it fits, or add drives."));
        if (machine?.Storage.Rotational == true && read > Floor)
            warnings.Add("The kernel calls this drive rotational, but it measured like flash (virtual disks often claim 1); the measured rates are what the planner uses.");
        return warnings;
    }
}

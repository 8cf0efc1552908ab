using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Execution;

/// <summary>
/// The resident trainer's Adam moments in either format: fp32 tensors, or (<c>--optimizer-state 8bit</c>) block-wise 8-bit
/// codes and scales per unit (<see cref="DeviceEightBitMoments"/>, 2 bytes per parameter and 8 per block of 2,048 instead of 8),
/// updated by <see cref="IDeviceAdamW8bit"/>. Checkpoints hold 8-bit moments in the CPU optimizer's format (blocks per tensor),
/// so saving and resuming round-trip the codes and scales exactly and <c>convert-checkpoint</c> reads them.
/// </summary>
public sealed partial class DeviceTrainer
{
    private readonly DeviceEightBitMoments[]? _moments8;
    private readonly IDeviceAdamW8bit? _adam8;

    /// <summary>Allocates unit <paramref name="unit"/>'s zero moments in the run's format (8-bit blocks start at each tensor of <paramref name="layout"/>).</summary>
    private void AllocateMoments(int unit, ParameterLayout layout)
    {
        long n = layout.Elements;
        if (_moments8 is not null)
        {
            _moments8[unit] = new DeviceEightBitMoments([.. layout.Slices.Select(s => s.Offset)], n, _device);
            return;
        }
        _expAvg[unit] = zeros([n], ScalarType.Float32, _device).DetachFromDisposeScope();
        _expAvgSq[unit] = zeros([n], ScalarType.Float32, _device).DetachFromDisposeScope();
    }

    /// <summary>Unit <paramref name="unit"/>'s moments as fp32 on the host (8-bit: decoded; a checkpoint requantises them to the same codes).</summary>
    private (float[] ExpAvg, float[] ExpAvgSq) MomentsOf(int unit)
    {
        if (_moments8 is not null) return _moments8[unit].Decode();
        using var scope = NewDisposeScope();
        return (_expAvg[unit].cpu().data<float>().ToArray(), _expAvgSq[unit].cpu().data<float>().ToArray());
    }

    /// <summary>Sets unit <paramref name="unit"/>'s moments from fp32 values (8-bit: quantised per tensor block).</summary>
    private void SetMoments(int unit, float[] expAvg, float[] expAvgSq)
    {
        if (_moments8 is not null)
        {
            _moments8[unit].Encode(expAvg, expAvgSq);
            return;
        }
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        CopyToDevice(expAvg, _expAvg[unit]);
        CopyToDevice(expAvgSq, _expAvgSq[unit]);
    }

    /// <summary>Unit <paramref name="unit"/>'s 8-bit moments as they are on the device (codes and scales), or null with fp32 state.</summary>
    internal (byte[] MCodes, float[] MScales, byte[] VCodes, float[] VScales)? EightBitStateOf(int unit) => _moments8?[unit].Raw();
}

using System.Runtime.InteropServices;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Optim;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Execution;

/// <summary>
/// The swapper as the holder of split masters' high halves (<c>--master-weights split</c>, <see cref="Planner.Optim.MasterSplit"/>):
/// the optimizer reads them from the unit's file or host copy, and every fp32 → bf16 cast of a master rounds ties away from
/// zero, so the parameters hold exactly the high halves the optimizer's remainders were taken against.
/// </summary>
internal sealed partial class ParameterSwapper
{
    /// <summary>
    /// Whether fp32 values written to offloaded bf16 parameters (initial weights, restored checkpoints, write-backs) round ties
    /// away from zero (split masters) rather than to even. Set before the first unit is stored.
    /// </summary>
    public bool RoundsTiesAway { get; set; }

    /// <summary>fp32 <paramref name="master"/> into <paramref name="destination"/> in the training precision, rounded as <see cref="RoundsTiesAway"/> says.</summary>
    private void ToWorking(ReadOnlySpan<float> master, Span<byte> destination)
    {
        if (RoundsTiesAway && _dtype == ScalarType.BFloat16) PrecisionCast.ToBf16TiesAway(master, destination);
        else PrecisionCast.ToWorking(master, destination, _dtype);
    }

    /// <inheritdoc/>
    /// <exception cref="InvalidOperationException">The unit is device-resident, or the parameters are not bf16 or sharded over ranks.</exception>
    public void ReadHigh(int unit, long elementOffset, Span<ushort> into, bool counted)
    {
        if (_dtype != ScalarType.BFloat16 || _shards is not null)
            throw new InvalidOperationException("Split master weights need bf16 parameters of one process (--precision bf16, one rank).");
        Span<byte> bytes = MemoryMarshal.AsBytes(into);
        switch (_unitTiers[unit])
        {
            case StorageTier.Cpu:
                _cpuCopies![unit]!.bytes.Slice(checked((int)(elementOffset * 2)), bytes.Length).CopyTo(bytes);
                if (counted) _io.Read(StorageTier.Cpu, bytes.Length);
                break;
            case StorageTier.Nvme:
                _store!.Read(Key(unit), elementOffset * 2, bytes);
                if (counted) _io.Read(StorageTier.Nvme, bytes.Length);
                break;
            default:
                throw new InvalidOperationException($"Split master weights read the high halves from host copies of the parameters; unit {unit}'s are on the device (use --offload-params cpu|nvme).");
        }
    }

    /// <inheritdoc/>
    /// <exception cref="InvalidOperationException">The staging slot does not hold the unit: the program was built for other settings.</exception>
    public void CopyStagedHigh(int unit, int stagingSlot, long elementOffset, Span<ushort> into)
    {
        if (stagingSlot >= _stagedUnit.Length || _stagedUnit[stagingSlot] != unit)
            throw new InvalidOperationException($"The program takes unit {unit}'s high halves from staging slot {stagingSlot}, which does not hold it; the program was built for other settings.");
        Span<byte> bytes = MemoryMarshal.AsBytes(into);
        _stagingSlots[stagingSlot].AsSpan(checked((int)(elementOffset * 2)), bytes.Length).CopyTo(bytes);
        _io.Read(StorageTier.Cpu, bytes.Length);
    }
}

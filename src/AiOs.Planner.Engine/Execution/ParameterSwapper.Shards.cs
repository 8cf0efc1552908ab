using AiOs.Planner.Engine.Collectives;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Simulation.Program;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Execution;

/// <summary>
/// The swapper under data parallelism over several ranks. Offloaded parameters follow ZeRO-3: each rank's tier (CPU RAM
/// or NVMe) holds only its shard of every unit (<see cref="ShardLayout"/>), uploads it into its place in the device
/// slot's padded buffer, and the program's AllGather fills the rest from the other ranks. Parameters kept on the device
/// follow ZeRO-2: every rank holds whole units, its optimizer updates its shard of each, and the program's AllGather
/// after the optimizer shares the updated shards.
/// </summary>
internal sealed partial class ParameterSwapper
{
    /// <summary>The other ranks, when there are any (world size above one); null for one process.</summary>
    private readonly ICollectives? _ranks;
    /// <summary>Per unit, how its elements split across ranks; null for one process.</summary>
    private readonly ShardLayout[]? _shards;

    /// <summary>Elements of <paramref name="unit"/> this rank's tier holds: its shard (padding included), or the whole unit.</summary>
    public long HostElements(int unit) => _shards?[unit].ShardElements ?? _layouts[unit].Elements;

    /// <summary>Real elements of <paramref name="unit"/> (its layout's).</summary>
    public long UnitElements(int unit) => _layouts[unit].Elements;

    /// <summary>Elements of a device buffer for <paramref name="unit"/>: the padded unit the shards gather into.</summary>
    private long PaddedElements(int unit) => _shards?[unit].PaddedElements ?? _layouts[unit].Elements;

    /// <summary>Where this rank's shard of <paramref name="unit"/> starts in the padded unit (0 for one process).</summary>
    private long ShardStart(int unit) => _shards is null ? 0 : _ranks!.Rank * _shards[unit].ShardElements;

    /// <summary>
    /// Stores a whole unit's initial (or restored) fp32 values: a device-resident unit whole; an offloaded one as this rank's
    /// shard of it.
    /// </summary>
    public void StoreUnit(int unit, ReadOnlySpan<float> values)
    {
        if (_shards is null || _tier == StorageTier.Device)
        {
            if (_tier == StorageTier.Device) _resident![unit].StoreFloats(0, values);
            else WriteBack(unit, 0, values);
            return;
        }
        float[] shard = new float[_shards[unit].ShardElements];
        _shards[unit].Shard(values, _ranks!.Rank, shard);
        WriteBack(unit, 0, shard);
    }

    /// <summary>ZeRO-2: this rank's updated shard values (offsets within its shard) into the whole device-resident unit, padding dropped.</summary>
    private void WriteShardOnDevice(int unit, long shardOffset, ReadOnlySpan<float> master)
    {
        long start = ShardStart(unit) + shardOffset;
        long real = Math.Clamp(_layouts[unit].Elements - start, 0, master.Length);
        if (real > 0) _resident![unit].StoreFloats(start, master[..(int)real]);
    }

    /// <summary>
    /// AllGather, as the step program's handler: a fetched unit's shards into its device slot (ZeRO-3), or, for the program's
    /// model-wide gather after the optimizer, every device-resident unit's updated shards (ZeRO-2). In place: this rank's
    /// shard already sits at its place in the padded buffer.
    /// </summary>
    public void Gather(Operation op)
    {
        if (_ranks is null) throw new InvalidOperationException("The program gathers parameters, but this run has one rank.");
        if (op.Unit.Kind == UnitKind.Model)
        {
            if (_resident is null) throw new InvalidOperationException("A model-wide gather needs device-resident parameters.");
            GatherResident();
            return;
        }
        int unit = UnitOf(op.Unit);
        GatherInPlace(ParametersOf(ModuleIn(unit, op.DeviceSlot)), unit);
    }

    /// <summary>ZeRO-2 (device-resident units, several ranks): every rank's shard of every unit into every rank's whole units; nothing otherwise.</summary>
    public void GatherResident()
    {
        if (_ranks is null || _resident is null) return;
        for (int u = 0; u < _layouts.Length; u++) GatherInPlace(_resident[u], u);
    }

    private void GatherInPlace(FlatParameters target, int unit)
    {
        long shard = _shards![unit].ShardElements;
        nint buffer = Native.CudaDriver.DataOf(target.Gathered);
        CollectiveElement element = CollectiveTypes.Carrier(_dtype);
        _ranks!.AllGather(buffer + (nint)(ShardStart(unit) * _elementBytes), buffer, shard, element);
    }

    /// <summary>Where this rank's shard of an offloaded unit goes in <paramref name="target"/>'s padded buffer (the whole buffer for one process).</summary>
    private Tensor UploadTarget(FlatParameters target, int unit) =>
        _shards is null ? target.Flat : target.Gathered.narrow(0, ShardStart(unit), _shards[unit].ShardElements);
}

using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.IO;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Execution;

/// <summary>The swapper as the step program's handler: read a unit into the staging slot the program names, upload it into the device slot it names.</summary>
internal sealed partial class ParameterSwapper
{
    private AlignedBuffer[] _stagingSlots = [];
    /// <summary>Per staging slot, the unit its last ParamRead brought in (−1 none): what a split master's staged high halves are checked against.</summary>
    private int[] _stagedUnit = [];
    private DecoderLayer[] _deviceSlots = [];

    /// <summary>
    /// Allocates the staging buffers and device slots <paramref name="program"/> uses: each staging slot sized for
    /// the largest unit read into it, one device slot per slot number the program gives layers.
    /// </summary>
    public void Prepare(StepProgram program)
    {
        ArgumentNullException.ThrowIfNull(program);
        if (_residentModules is not null) return;
        KeepInRam(program);
        if (SwapsCopiesFor(program)) AllocateSpareCopies();
        foreach (AlignedBuffer b in _stagingSlots) b?.Dispose();
        var sizes = new Dictionary<int, long>();
        int deviceSlots = 0;
        foreach (Operation op in program.Ops)
        {
            if (op.Kind == OpKind.ParamRead && op.Slot >= 0)
                sizes[op.Slot] = Math.Max(sizes.GetValueOrDefault(op.Slot), UnitBytes(UnitOf(op.Unit)));
            if (op.DeviceSlot >= 0 && op.Unit.Kind == UnitKind.Layer) deviceSlots = Math.Max(deviceSlots, op.DeviceSlot + 1);
        }
        _stagingSlots = new AlignedBuffer[sizes.Count == 0 ? 0 : sizes.Keys.Max() + 1];
        _stagedUnit = Enumerable.Repeat(-1, _stagingSlots.Length).ToArray();
        foreach (var (slot, bytes) in sizes)
            _stagingSlots[slot] = new AlignedBuffer(new Bytes((bytes + AlignedBuffer.Alignment - 1) / AlignedBuffer.Alignment * AlignedBuffer.Alignment));
        DisposeDeviceSlots();
        _deviceSlots = Enumerable.Range(0, deviceSlots).Select(_ => new DecoderLayer(_spec, new FlatParameters(_layouts[0], _dtype, _device, PaddedElements(0)))).ToArray();
    }

    /// <summary>The engine's unit index of a program unit: layer i, or the layer count for the outer block.</summary>
    public int UnitOf(UnitId unit) => unit.Kind switch
    {
        UnitKind.Layer => unit.Number,
        UnitKind.Outer or UnitKind.Embedding or UnitKind.Head => _spec.NumLayers,
        _ => throw new ArgumentException($"The engine has no unit for {unit}.", nameof(unit)),
    };

    /// <summary>ParamRead: the unit's parameters from its swap file into staging slot <see cref="Operation.Slot"/>.</summary>
    public void Read(Operation op)
    {
        int unit = UnitOf(op.Unit);
        if (_unitTiers[unit] != StorageTier.Nvme)
            throw new InvalidOperationException($"The program reads {op.Unit} from NVMe, but its parameters are in {_unitTiers[unit]} (max_in_cpu); the program was built for other settings.");
        int bytes = checked((int)UnitBytes(unit));
        _stagedUnit[op.Slot] = -1;
        _store!.Read(Key(unit), 0, _stagingSlots[op.Slot].AsSpan(0, bytes));
        _io.Read(StorageTier.Nvme, bytes);
        _stagedUnit[op.Slot] = unit;
    }

    /// <summary>
    /// ParamUpload: the unit's parameters from its staging slot (NVMe) or its host copy (CPU) into device slot <see cref="Operation.DeviceSlot"/>;
    /// with copy streams only queued (the trainer's <see cref="StreamOrder"/> orders it after the slot's last use and before its compute).
    /// </summary>
    public void Upload(Operation op)
    {
        int unit = UnitOf(op.Unit);
        FlatParameters target = ParametersOf(ModuleIn(unit, op.DeviceSlot));
        Tensor destination = UploadTarget(target, unit);
        if (_copies is not null)
        {
            // Queued on the upload stream: the compute that uses the slot waits for it on the device, not on the host.
            nint host = _unitTiers[unit] == StorageTier.Nvme ? _stagingSlots[op.Slot].Address : Native.CudaDriver.DataOf(_cpuCopies![unit]!);
            _copies.UploadQueued(destination, host, UnitBytes(unit));
            if (_unitTiers[unit] == StorageTier.Cpu) _io.Read(StorageTier.Cpu, UnitBytes(unit));
        }
        else if (_unitTiers[unit] == StorageTier.Nvme)
        {
            target.LoadBytesAt(ShardStart(unit), _stagingSlots[op.Slot].AsSpan(0, checked((int)UnitBytes(unit))));
        }
        else
        {
            using (no_grad()) destination.copy_(_cpuCopies![unit]!);
            _io.Read(StorageTier.Cpu, UnitBytes(unit));
        }
        _io.Upload(UnitBytes(unit));
    }

    /// <summary>
    /// Drops the gradients every device module holds (resident modules, the outer slot, the layer slots): after a failed
    /// step, a layer's gradients from a backward whose take never came would refuse the next backward on that slot.
    /// </summary>
    public void ClearDeviceGradients()
    {
        if (_residentModules is not null)
            foreach (var module in _residentModules) ParametersOf(module).ClearGradients();
        foreach (DecoderLayer slot in _deviceSlots) slot.Parameters.ClearGradients();
        if (_outerSlot is not null) ParametersOf(_outerSlot).ClearGradients();
    }

    /// <summary>The module holding <paramref name="unit"/> on the device: its resident module, the outer slot, or layer slot <paramref name="deviceSlot"/>.</summary>
    public nn.Module<Tensor, Tensor> ModuleIn(int unit, int deviceSlot) =>
        _residentModules is not null ? _residentModules[unit]
        : unit == _spec.NumLayers ? _outerSlot!
        : deviceSlot >= 0 && deviceSlot < _deviceSlots.Length ? _deviceSlots[deviceSlot]
        : throw new InvalidOperationException($"The program gives layer {unit} no device slot ({deviceSlot}).");

    /// <summary>
    /// NVMe tier: gives the units max_in_cpu keeps in RAM (<see cref="Settings.ParameterPlacement"/> for the program's settings
    /// and ranks, when its shape honours the setting) a host copy, as the CPU tier has, once, before any unit is stored.
    /// </summary>
    private void KeepInRam(StepProgram program)
    {
        if (_tier != StorageTier.Nvme) return;
        bool[] kept = program.Shape.HonoursMaxInCpu
            ? Settings.ParameterPlacement.EngineUnitsInRam(_spec, program.Settings, program.Topology.Ranks)
            : new bool[_layouts.Length];
        if (kept.Length != _layouts.Length)
            throw new ArgumentException($"The program is for {kept.Length - 1} layers; this model has {_spec.NumLayers}.", nameof(program));
        if (_cpuBuffers is not null)
        {
            // The host copies hold the only values of their units: a later program must keep the same units in RAM.
            for (int u = 0; u < kept.Length; u++)
                if (kept[u] != (_unitTiers[u] == StorageTier.Cpu))
                    throw new InvalidOperationException($"The program places unit {u}'s parameters differently from the first program (max_in_cpu changed); make a new trainer.");
            return;
        }
        bool gpu = _device.type == TorchSharp.DeviceType.CUDA;
        _cpuBuffers = new Native.HostBuffer?[_layouts.Length];
        int[] units = Enumerable.Range(0, _layouts.Length).Where(u => kept[u]).ToArray();
        Native.HostBuffer[] buffers = units.Length == 0 ? [] : Native.HostBuffer.AllocateMany(units.Select(u => HostElements(u)).ToArray(), _dtype, pin: gpu);
        for (int i = 0; i < units.Length; i++)
        {
            _cpuBuffers[units[i]] = buffers[i];
            _unitTiers[units[i]] = StorageTier.Cpu;
        }
        _cpuCopies = _cpuBuffers.Select(b => b?.Tensor).ToArray();
        foreach (int u in units.Where(u => _inStore[u]))
        {
            // Stored before the placement was known: its values come from its swap file (read once; the file is no longer used).
            int bytes = checked((int)UnitBytes(u));
            using var staging = new AlignedBuffer(new Bytes((bytes + AlignedBuffer.Alignment - 1) / AlignedBuffer.Alignment * AlignedBuffer.Alignment));
            _store!.Read(Key(u), 0, staging.AsSpan(0, bytes));
            staging.AsSpan(0, bytes).CopyTo(_cpuCopies[u]!.bytes);
        }
    }

    private void DisposeDeviceSlots()
    {
        foreach (DecoderLayer l in _deviceSlots) l.Parameters.Dispose();
        _deviceSlots = [];
    }

    private void DisposeProgramSlots()
    {
        foreach (AlignedBuffer b in _stagingSlots) b?.Dispose();
        _stagingSlots = [];
        DisposeDeviceSlots();
    }
}

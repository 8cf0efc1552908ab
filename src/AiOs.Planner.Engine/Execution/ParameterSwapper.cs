using System.Buffers;
using System.Runtime.InteropServices;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Optim;
using AiOs.Planner.Engine.Storage;
using AiOs.Planner.Models;
using AiOs.Planner.Simulation.Program;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Execution;

/// <summary>
/// Holds every unit's working parameters (training precision) in one tier and brings a unit to the
/// device just before it runs. Device tier: each unit has its own resident module. CPU or NVMe tier:
/// a few device slots are reused; NVMe reads run ahead on I/O threads through a
/// <see cref="PrefetchWindow"/> bounded by buffer_count and the prefetch depth, and the copy into a
/// slot happens when the unit is acquired. Write-backs from the optimizer may come from another thread.
/// </summary>
internal sealed partial class ParameterSwapper : IDisposable, IBf16Sink
{
    private readonly ModelSpec _spec;
    private readonly StorageTier _tier;
    private readonly int _elementBytes;
    private readonly ScalarType _dtype;
    private readonly ISwapStore? _store;
    private readonly IoCounters _io;
    private readonly SpanTrace _trace;
    private readonly ParameterLayout[] _layouts;
    private readonly FlatParameters[]? _resident;
    private readonly nn.Module<Tensor, Tensor>[]? _residentModules;
    /// <summary>CPU tier: one host tensor per unit in the training precision, pinned when the device is a GPU (so an upload is one DMA transfer).</summary>
    private readonly Tensor[]? _cpuCopies;
    private readonly Stack<DecoderLayer> _freeLayerSlots = new();
    private readonly OuterBlock? _outerSlot;
    private readonly Dictionary<int, nn.Module<Tensor, Tensor>> _inUse = [];
    private readonly PrefetchWindow? _window;
    /// <summary>CPU tier on a GPU: uploads run on their own stream, one unit ahead (see <see cref="CopyStream"/>; owned by the trainer).</summary>
    private readonly CopyStream? _copies;
    private readonly Dictionary<FlatParameters, (nint Mark, nint Done)> _slotEvents = [];
    private readonly Dictionary<int, DecoderLayer> _uploaded = [];
    private IReadOnlyList<int> _order = [];
    private int _cursor;

    public ParameterSwapper(ModelSpec spec, StorageTier tier, ScalarType dtype, Device device, int bufferCount, int prefetchDepth,
        ISwapStore? store, IoCounters io, SpanTrace trace, CopyStream? copies = null, bool prefetchWindow = true)
    {
        _spec = spec;
        _tier = tier;
        _elementBytes = dtype == ScalarType.Float32 ? 4 : 2;
        _dtype = dtype;
        _store = store;
        _io = io;
        _trace = trace;
        var layer = ParameterLayout.ForLayer(spec);
        var outer = ParameterLayout.ForOuter(spec);
        _layouts = Enumerable.Range(0, spec.NumLayers + 1).Select(u => u == spec.NumLayers ? outer : layer).ToArray();
        if (tier == StorageTier.Nvme && store is null) throw new ArgumentException("NVMe parameters need a swap store.", nameof(store));

        if (tier == StorageTier.Device)
        {
            _resident = _layouts.Select(l => new FlatParameters(l, dtype, device)).ToArray();
            _residentModules = _resident.Select((p, u) => u == spec.NumLayers ? (nn.Module<Tensor, Tensor>)new OuterBlock(spec, p) : new DecoderLayer(spec, p)).ToArray();
            return;
        }
        if (tier == StorageTier.Cpu)
            _cpuCopies = _layouts.Select(l =>
            {
                Tensor host = zeros([l.Elements], dtype, CPU);
                return (device.type == TorchSharp.DeviceType.CUDA ? host.pin_memory() : host).DetachFromDisposeScope();
            }).ToArray();
        int depth = Math.Max(0, prefetchDepth);
        int slots = Math.Clamp(1 + depth, 1, Math.Max(1, spec.NumLayers));
        for (int i = 0; i < slots; i++) _freeLayerSlots.Push(new DecoderLayer(spec, new FlatParameters(layer, dtype, device)));
        _outerSlot = new OuterBlock(spec, new FlatParameters(outer, dtype, device));
        if (tier == StorageTier.Cpu && device.type == TorchSharp.DeviceType.CUDA) _copies = copies;
        // A swapper the step program drives (Prepare) stages reads in the program's slots, not in a window of its own.
        if (tier == StorageTier.Nvme && prefetchWindow)
            _window = new PrefetchWindow(this, Math.Max(1, bufferCount), depth, layer.Elements * _elementBytes, outer.Elements * _elementBytes);
    }

    /// <summary>The tier holding the working parameters.</summary>
    public StorageTier Tier => _tier;

    /// <summary>Bytes of unit <paramref name="unit"/> in the training precision.</summary>
    public long UnitBytes(int unit) => _layouts[unit].Elements * _elementBytes;

    internal static string Key(int unit) => $"param-u{unit}";

    /// <summary>The unit as the step program numbers layers: the outer block is −1 (it is fetched for the embedding first).</summary>
    internal int ProgramLayer(int unit) => unit == _spec.NumLayers ? -1 : unit;

    /// <summary>
    /// Stores fp32 values <paramref name="master"/> for elements starting at <paramref name="elementOffset"/>
    /// of <paramref name="unit"/>, converted to the training precision, in the unit's tier.
    /// </summary>
    public void WriteBack(int unit, long elementOffset, ReadOnlySpan<float> master) => WriteBack(unit, elementOffset, master, traced: true);

    /// <summary>As <see cref="WriteBack(int, long, ReadOnlySpan{float})"/>; <paramref name="traced"/> false when the program executor records the span.</summary>
    public void WriteBack(int unit, long elementOffset, ReadOnlySpan<float> master, bool traced)
    {
        int byteCount = master.Length * _elementBytes;
        long byteOffset = elementOffset * _elementBytes;
        switch (_tier)
        {
            case StorageTier.Device:
                _resident![unit].StoreFloats(elementOffset, master);
                break;
            case StorageTier.Cpu:
                PrecisionCast.ToWorking(master, _cpuCopies![unit].bytes.Slice(checked((int)byteOffset), byteCount), _dtype);
                _io.Written(StorageTier.Cpu, byteCount);
                break;
            default:
                byte[] buffer = ArrayPool<byte>.Shared.Rent(byteCount);
                try
                {
                    PrecisionCast.ToWorking(master, buffer.AsSpan(0, byteCount), _dtype);
                    if (traced)
                        using (_trace.Begin(ResourceKind.Nvme, OpKind.ParamWriteBack, ProgramLayer(unit), byteCount))
                            _store!.Write(Key(unit), byteOffset, buffer.AsSpan(0, byteCount));
                    else
                        _store!.Write(Key(unit), byteOffset, buffer.AsSpan(0, byteCount));
                    _io.Written(StorageTier.Nvme, byteCount);
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
                break;
        }
    }

    /// <summary>
    /// Where the optimizer can write the bf16 working copy of <paramref name="count"/> elements of
    /// <paramref name="unit"/> from <paramref name="elementOffset"/> itself, in the same pass as its update: the
    /// device buffer's pinned staging, or the CPU-tier tensor. Empty when the tier needs the fp32 values
    /// (<see cref="WriteBack(int, long, ReadOnlySpan{float})"/>): NVMe, or fp32 training. Follow a write with <see cref="CommitBf16"/>.
    /// </summary>
    public Span<ushort> Bf16Target(int unit, long elementOffset, int count)
    {
        if (_dtype != ScalarType.BFloat16) return Span<ushort>.Empty;
        Span<byte> bytes = _tier switch
        {
            StorageTier.Device => _resident![unit].WritableBytes(elementOffset, count),
            StorageTier.Cpu => _cpuCopies![unit].bytes.Slice(checked((int)(elementOffset * 2)), count * 2),
            _ => Span<byte>.Empty,
        };
        return MemoryMarshal.Cast<byte, ushort>(bytes);
    }

    /// <summary>Publishes a <see cref="Bf16Target"/> write: one copy to the device for device-resident units.</summary>
    public void CommitBf16(int unit, long elementOffset, int count)
    {
        if (_tier == StorageTier.Device) _resident![unit].CommitWritable(elementOffset, count);
        else if (_tier == StorageTier.Cpu) _io.Written(StorageTier.Cpu, 2L * count);
    }

    /// <summary>Declares the order units will be acquired in this pass so reads can run ahead.</summary>
    public void BeginPass(IReadOnlyList<int> order)
    {
        _window?.Begin(order);
        if (_copies is null) return;
        // Uploads issued ahead for a pass that ended early go back to the free slots (their copies finish harmlessly).
        foreach (DecoderLayer slot in _uploaded.Values) _freeLayerSlots.Push(slot);
        _uploaded.Clear();
        _order = order;
        _cursor = 0;
    }

    /// <summary>The unit's module on the device, with its current values; blocks on I/O if it is not there yet.</summary>
    public nn.Module<Tensor, Tensor> Acquire(int unit)
    {
        if (_residentModules is not null) return _residentModules[unit];
        if (_inUse.ContainsKey(unit)) throw new InvalidOperationException($"Unit {unit} is already on the device.");
        if (_copies is not null && _uploaded.Remove(unit, out DecoderLayer? ready))
        {
            // Its copy was queued while the previous unit computed; the default stream waits for it, the host does not.
            CopyStream.DefaultWaits(_slotEvents[ready.Parameters].Done);
            _io.Read(StorageTier.Cpu, UnitBytes(unit));
            _io.Upload(UnitBytes(unit));
            _inUse[unit] = ready;
            UploadNext(unit);
            return ready;
        }
        bool isOuter = unit == _spec.NumLayers;
        nn.Module<Tensor, Tensor> slot = isOuter ? _outerSlot! : _freeLayerSlots.Count > 0 ? _freeLayerSlots.Pop()
            : throw new InvalidOperationException("No free device slot: release a unit before acquiring another.");
        FlatParameters target = isOuter ? _outerSlot!.Parameters : ((DecoderLayer)slot).Parameters;
        if (_copies is not null)
        {
            _io.Read(StorageTier.Cpu, UnitBytes(unit));
            _io.Upload(UnitBytes(unit));
            var (_, done) = Upload(unit, target);
            CopyStream.DefaultWaits(done);
            _inUse[unit] = slot;
            UploadNext(unit);
            return slot;
        }
        if (_tier == StorageTier.Cpu)
        {
            using (_trace.Begin(ResourceKind.H2d, OpKind.ParamUpload, ProgramLayer(unit), UnitBytes(unit))) target.CopyFrom(_cpuCopies![unit]);
            _io.Read(StorageTier.Cpu, UnitBytes(unit));
            _io.Upload(UnitBytes(unit));
        }
        else
        {
            _window!.TakeInto(unit, target);
        }
        _inUse[unit] = slot;
        return slot;
    }

    /// <summary>Queues unit <paramref name="unit"/>'s copy into <paramref name="target"/> on the copy stream; returns the slot's events.</summary>
    private (nint Mark, nint Done) Upload(int unit, FlatParameters target)
    {
        if (!_slotEvents.TryGetValue(target, out var events)) _slotEvents[target] = events = (_copies!.NewEvent(), _copies.NewEvent());
        _copies!.Upload(target.Flat, _cpuCopies![unit], events.Mark, events.Done);
        return events;
    }

    /// <summary>
    /// After <paramref name="current"/> is acquired, queues the copy of the next layer in the pass order into a free
    /// slot, so it overlaps <paramref name="current"/>'s compute.
    /// </summary>
    private void UploadNext(int current)
    {
        // The pass visits the last layer twice in a row (forward, then backward): look from the cursor on.
        while (_cursor < _order.Count && _order[_cursor] != current) _cursor++;
        if (_cursor >= _order.Count) return;
        _cursor++;
        if (_cursor >= _order.Count) return;
        int next = _order[_cursor];
        if (next == _spec.NumLayers || _inUse.ContainsKey(next) || _uploaded.ContainsKey(next) || _freeLayerSlots.Count == 0) return;
        DecoderLayer slot = _freeLayerSlots.Pop();
        Upload(next, slot.Parameters);
        _uploaded[next] = slot;
    }

    /// <summary>Gives the unit's slot back; its gradients must have been drained.</summary>
    public void Release(int unit)
    {
        if (_residentModules is not null) return;
        if (!_inUse.Remove(unit, out var slot)) throw new InvalidOperationException($"Unit {unit} is not on the device.");
        if (slot is DecoderLayer layer) _freeLayerSlots.Push(layer);
    }

    /// <summary>The unit's parameters while acquired (for draining gradients).</summary>
    public static FlatParameters ParametersOf(nn.Module<Tensor, Tensor> module) => module switch
    {
        DecoderLayer l => l.Parameters,
        OuterBlock o => o.Parameters,
        _ => throw new ArgumentException("Not an engine module.", nameof(module)),
    };

    public void Dispose()
    {
        DisposeProgramSlots();
        foreach (DecoderLayer l in _uploaded.Values) _freeLayerSlots.Push(l);
        _uploaded.Clear();
        _window?.Dispose();
        if (_resident is not null) foreach (FlatParameters p in _resident) p.Dispose();
        foreach (DecoderLayer l in _freeLayerSlots) l.Parameters.Dispose();
        foreach (var m in _inUse.Values) ParametersOf(m).Dispose();
        _outerSlot?.Parameters.Dispose();
        if (_cpuCopies is not null) foreach (Tensor t in _cpuCopies) t.Dispose();
    }
}

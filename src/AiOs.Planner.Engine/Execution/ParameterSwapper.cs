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
/// Holds every unit's working parameters (training precision) in one tier. Device tier: each unit has its
/// own resident module. NVMe tier: each unit in a swap file, except the units max_in_cpu keeps in RAM
/// (<see cref="Settings.ParameterPlacement"/>, set by <see cref="Prepare"/>), which are held as the CPU tier holds
/// every unit. CPU or NVMe tier: the step program's ParamRead and ParamUpload operations bring a
/// unit into the staging slot and device slot the program names (<see cref="Prepare"/>, <see cref="Read"/>,
/// <see cref="Upload"/>); when and how far ahead is the program's decision, not the swapper's. Write-backs
/// from the optimizer may come from another thread.
/// </summary>
internal sealed partial class ParameterSwapper : IDisposable, IHalfSink, IHighHalves
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
    /// <summary>
    /// CPU tier: one host tensor per unit in the training precision, page-locked when the device is a GPU (so an upload is
    /// one DMA transfer). NVMe tier: the same for the units max_in_cpu keeps in RAM, null for the others (null until <see cref="Prepare"/>).
    /// </summary>
    private Tensor?[]? _cpuCopies;
    /// <summary>The memory behind <see cref="_cpuCopies"/> (null entries where a unit has none).</summary>
    private Native.HostBuffer?[]? _cpuBuffers;
    /// <summary>Per unit, the tier holding its working parameters: <see cref="_tier"/>, or the CPU for a unit max_in_cpu keeps in RAM.</summary>
    private readonly StorageTier[] _unitTiers;
    /// <summary>Per unit, whether its swap file has been written (a unit stored before <see cref="Prepare"/> keeps its values when moved to RAM).</summary>
    private readonly bool[] _inStore;
    private readonly OuterBlock? _outerSlot;
    private readonly Device _device;
    /// <summary>On a GPU with copy streams: uploads are queued on the upload stream, ordered by the program's dependencies (<see cref="StreamOrder"/>; owned by the trainer).</summary>
    private readonly CopyStream? _copies;

    public ParameterSwapper(ModelSpec spec, StorageTier tier, ScalarType dtype, Device device, ISwapStore? store, IoCounters io, SpanTrace trace,
        CopyStream? copies = null, Collectives.ICollectives? ranks = null)
    {
        _ranks = ranks is { WorldSize: > 1 } ? ranks : null;
        _copies = device.type == TorchSharp.DeviceType.CUDA && tier != StorageTier.Device ? copies : null;
        _device = device;
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
        _shards = _ranks is null ? null : _layouts.Select(l => new Collectives.ShardLayout(l.Elements, _ranks.WorldSize)).ToArray();
        if (tier == StorageTier.Nvme && store is null) throw new ArgumentException("NVMe parameters need a swap store.", nameof(store));
        _unitTiers = Enumerable.Repeat(tier, _layouts.Length).ToArray();
        _inStore = new bool[_layouts.Length];

        if (tier == StorageTier.Device)
        {
            _resident = _layouts.Select((l, u) => new FlatParameters(l, dtype, device, PaddedElements(u))).ToArray();
            _residentModules = _resident.Select((p, u) => u == spec.NumLayers ? (nn.Module<Tensor, Tensor>)new OuterBlock(spec, p) : new DecoderLayer(spec, p)).ToArray();
            return;
        }
        if (tier == StorageTier.Cpu)
        {
            // Each unit once, at its exact size, faulted in now (and page-locked for a GPU) on every core: see HostBuffer.
            _cpuBuffers = Native.HostBuffer.AllocateMany(Enumerable.Range(0, _layouts.Length).Select(HostElements).ToArray(), dtype, pin: device.type == TorchSharp.DeviceType.CUDA);
            _cpuCopies = _cpuBuffers.Select(b => b!.Tensor).ToArray();
        }
        _outerSlot = new OuterBlock(spec, new FlatParameters(outer, dtype, device, PaddedElements(spec.NumLayers)));
    }

    /// <summary>The tier holding the working parameters (the configured one; see <see cref="TierOf"/> for a unit's).</summary>
    public StorageTier Tier => _tier;

    /// <summary>The tier holding <paramref name="unit"/>'s working parameters: the CPU for a unit on NVMe that max_in_cpu keeps in RAM.</summary>
    public StorageTier TierOf(int unit) => _unitTiers[unit];

    /// <summary>Bytes of unit <paramref name="unit"/> in the training precision that its tier holds (with several ranks: this rank's shard, padding included).</summary>
    public long UnitBytes(int unit) => HostElements(unit) * _elementBytes;

    internal static string Key(int unit) => $"param-u{unit}";

    /// <summary>The unit as the step program numbers layers: the outer block is −1 (it is fetched for the embedding first).</summary>
    internal int ProgramLayer(int unit) => unit == _spec.NumLayers ? -1 : unit;

    /// <summary>
    /// Stores fp32 values <paramref name="master"/> for elements starting at <paramref name="elementOffset"/>
    /// of <paramref name="unit"/>, converted to the training precision, in the unit's tier.
    /// </summary>
    public void WriteBack(int unit, long elementOffset, ReadOnlySpan<float> master) => WriteBack(unit, elementOffset, master, traced: true, wait: true);

    /// <summary>
    /// As <see cref="WriteBack(int, long, ReadOnlySpan{float})"/>; <paramref name="traced"/> false when the program executor records
    /// the span. A step program's write-back (the update's, or the delayed schedule's write-back of θ) is stream-ordered with the
    /// passes, so a device-resident unit's copy is queued without waiting (<see cref="WaitForCommits"/>); a direct call (initial
    /// values, a restored checkpoint) waits.
    /// </summary>
    public void WriteBack(int unit, long elementOffset, ReadOnlySpan<float> master, bool traced) =>
        WriteBack(unit, elementOffset, master, traced, wait: traced || WaitForCommits);

    /// <summary>The arrays NVMe write-backs cast into (<see cref="Storage.ReusedArrays"/>).</summary>
    private readonly ReusedArrays _writeBackArrays = new();

    private void WriteBack(int unit, long elementOffset, ReadOnlySpan<float> master, bool traced, bool wait)
    {
        if (_tier == StorageTier.Device && _shards is not null)
        {
            WriteShardOnDevice(unit, elementOffset, master);
            return;
        }
        int byteCount = master.Length * _elementBytes;
        long byteOffset = elementOffset * _elementBytes;
        switch (_unitTiers[unit])
        {
            case StorageTier.Device:
                _resident![unit].StoreFloats(elementOffset, master, wait);
                break;
            case StorageTier.Cpu:
                ToWorking(master, _cpuCopies![unit]!.bytes.Slice(checked((int)byteOffset), byteCount));
                _io.Written(StorageTier.Cpu, byteCount);
                break;
            default:
                byte[] buffer = _writeBackArrays.Rent(byteCount);
                try
                {
                    ToWorking(master, buffer.AsSpan(0, byteCount));
                    if (traced)
                        using (_trace.Begin(ResourceKind.Nvme, OpKind.ParamWriteBack, ProgramLayer(unit), byteCount))
                            _store!.Write(Key(unit), byteOffset, buffer.AsSpan(0, byteCount));
                    else
                        _store!.Write(Key(unit), byteOffset, buffer.AsSpan(0, byteCount));
                    _inStore[unit] = true;
                    _io.Written(StorageTier.Nvme, byteCount);
                }
                finally
                {
                    _writeBackArrays.Return(buffer);
                }
                break;
        }
    }

    /// <summary>
    /// Where the optimizer can write the half-precision working copy (bf16, or fp16 in fp16 training: <see cref="TargetsFp16"/>)
    /// of <paramref name="count"/> elements of <paramref name="unit"/> from <paramref name="elementOffset"/> itself, in the same
    /// pass as its update: the device buffer's pinned staging, or the CPU-tier tensor. Empty when the tier needs the fp32 values
    /// (<see cref="WriteBack(int, long, ReadOnlySpan{float})"/>): NVMe, or fp32 training. Follow a write with <see cref="CommitHalf"/>.
    /// </summary>
    public Span<ushort> HalfTarget(int unit, long elementOffset, int count)
    {
        // A shard of a device-resident unit may end in padding the unit lacks: it takes the fp32 path, which drops the padding.
        if (_dtype is not (ScalarType.BFloat16 or ScalarType.Float16) || (_tier == StorageTier.Device && _shards is not null)) return Span<ushort>.Empty;
        Span<byte> bytes = _unitTiers[unit] switch
        {
            StorageTier.Device => _resident![unit].WritableBytes(elementOffset, count),
            StorageTier.Cpu => _cpuCopies![unit]!.bytes.Slice(checked((int)(elementOffset * 2)), count * 2),
            _ => Span<byte>.Empty,
        };
        return MemoryMarshal.Cast<byte, ushort>(bytes);
    }

    /// <summary>Whether <see cref="HalfTarget"/>'s targets take fp16 (the parameters are fp16), not bf16.</summary>
    public bool TargetsFp16 => _dtype == ScalarType.Float16;

    /// <summary>
    /// Publishes a <see cref="HalfTarget"/> write (the optimizer's update): one copy to the device for device-resident units, queued
    /// on the default stream without waiting for the kernels before it unless <see cref="WaitForCommits"/> (safe by stream order:
    /// see <see cref="FlatParameters.CommitWritable"/>; the simulator prices the copy as a ResidentUpload operation on the host link).
    /// </summary>
    public void CommitHalf(int unit, long elementOffset, int count)
    {
        if (_unitTiers[unit] == StorageTier.Device) _resident![unit].CommitWritable(elementOffset, count, wait: WaitForCommits);
        else if (_unitTiers[unit] == StorageTier.Cpu) _io.Written(StorageTier.Cpu, 2L * count);
    }

    /// <summary>AIOS_BLOCKING_COMMIT=1: every commit of a device-resident unit waits for its copy (the old behaviour; a GPU A/B).</summary>
    private static readonly bool BlockingCommitsByRequest = Environment.GetEnvironmentVariable("AIOS_BLOCKING_COMMIT") == "1";

    /// <summary>Whether the optimizer's commits of device-resident units wait for their copy (AIOS_BLOCKING_COMMIT=1; settable for tests).</summary>
    internal bool WaitForCommits { get; set; } = BlockingCommitsByRequest;

    /// <summary>A device-resident unit's parameters (tests look at its commits).</summary>
    internal FlatParameters Resident(int unit) => _resident?[unit] ?? throw new InvalidOperationException("The parameters are not device-resident.");

    /// <summary>The parameters of an engine module (for uploads and draining gradients).</summary>
    public static FlatParameters ParametersOf(nn.Module<Tensor, Tensor> module) => module switch
    {
        DecoderLayer l => l.Parameters,
        OuterBlock o => o.Parameters,
        _ => throw new ArgumentException("Not an engine module.", nameof(module)),
    };

    public void Dispose()
    {
        DisposeProgramSlots();
        if (_resident is not null) foreach (FlatParameters p in _resident) p.Dispose();
        _outerSlot?.Parameters.Dispose();
        if (_cpuBuffers is not null) foreach (Native.HostBuffer? b in _cpuBuffers) b?.Dispose();
        DisposeSpareCopies();
    }
}

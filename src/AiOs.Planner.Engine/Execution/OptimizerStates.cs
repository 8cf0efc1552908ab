using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Optim;
using AiOs.Planner.Engine.Storage;
using AiOs.Planner.IO;
using AiOs.Planner.Units;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Engine.Execution;

/// <summary>A contiguous run of one unit's elements that the optimizer updates (and swaps) as a whole.</summary>
/// <param name="Unit">The unit (layer index, or the layer count for the outer block).</param>
/// <param name="Index">Position among the unit's sub-groups.</param>
/// <param name="Offset">First element within the unit.</param>
/// <param name="Elements">Element count, at most sub_group_size.</param>
internal sealed record SubGroup(int Unit, int Index, long Offset, int Elements);

/// <summary>A parameter tier that can take the optimizer's bf16 output directly (see <see cref="ParameterSwapper.Bf16Target"/>).</summary>
internal interface IBf16Sink
{
    /// <summary>Where to write the bf16 copy of the elements, or empty when the tier needs fp32 values.</summary>
    Span<ushort> Bf16Target(int unit, long elementOffset, int count);

    /// <summary>Publishes what was written.</summary>
    void CommitBf16(int unit, long elementOffset, int count);
}

/// <summary>
/// fp32 master weights and Adam moments of every unit, in CPU RAM or in NVMe swap files, updated
/// sub-group by sub-group. Sub-groups split each unit into runs of at most sub_group_size elements
/// (a sub-group never spans two units, so one layer can be updated on its own in the overlapped
/// schedule). On NVMe a sub-group's state is one object [master | m | v]. The step program orders the
/// reads, updates and writes (pipelining is its dependencies) and names the swap slot each uses
/// (<see cref="Prepare"/>); <see cref="Update"/> serves the in-memory reference trainer.
/// </summary>
internal sealed partial class OptimizerStates : IDisposable
{
    private readonly StorageTier _tier;
    private readonly IOptimizerStep _step;
    private readonly ISwapStore? _store;
    private readonly IoCounters _io;
    private readonly SpanTrace _trace;
    private readonly SubGroup[][] _groups;
    private readonly float[][]? _master, _m, _v;
    private readonly BlockingCollection<AlignedBuffer>? _buffers;
    private readonly List<AlignedBuffer> _allBuffers = [];
    private float[]? _gradientScratch;
    /// <summary>8-bit moments (<c>--optimizer-state 8bit</c>): they replace <see cref="_m"/>, <see cref="_v"/> and the fp32 moments of the swap objects; null in fp32.</summary>
    private readonly EightBitMoments? _q8;

    public OptimizerStates(IReadOnlyList<long> unitElements, StorageTier tier, long subGroupSize, IOptimizerStep step, ISwapStore? store, IoCounters io, SpanTrace trace,
        EightBitMoments? eightBit = null)
    {
        _q8 = eightBit;
        if (subGroupSize < 1) throw new ArgumentOutOfRangeException(nameof(subGroupSize), "sub_group_size must be at least 1.");
        _tier = tier == StorageTier.Nvme ? StorageTier.Nvme : StorageTier.Cpu;
        _step = step;
        _store = store;
        _io = io;
        _trace = trace;
        _groups = unitElements.Select((n, u) => Split(u, n, subGroupSize)).ToArray();
        if (_tier == StorageTier.Cpu)
        {
            _master = unitElements.Select(n => new float[n]).ToArray();
            _m = _q8 is null ? unitElements.Select(n => new float[n]).ToArray() : null;
            _v = _q8 is null ? unitElements.Select(n => new float[n]).ToArray() : null;
        }
        else
        {
            if (store is null) throw new ArgumentException("NVMe optimizer states need a swap store.", nameof(store));
            long largest = _groups.SelectMany(g => g).Max(StateBytes);
            _buffers = new BlockingCollection<AlignedBuffer>();
            // One buffer for initialising the swap files; the program's slots are allocated by Prepare.
            // 4096-byte aligned native memory, so O_DIRECT moves the state without a bounce copy.
            long bytes = (largest + AlignedBuffer.Alignment - 1) / AlignedBuffer.Alignment * AlignedBuffer.Alignment;
            var buffer = new AlignedBuffer(new Bytes(bytes));
            _allBuffers.Add(buffer);
            _buffers.Add(buffer);
        }
    }

    /// <summary>The sub-groups of <paramref name="unit"/>, in element order.</summary>
    public IReadOnlyList<SubGroup> SubGroupsOf(int unit) => _groups[unit];

    private static SubGroup[] Split(int unit, long elements, long size)
    {
        var list = new List<SubGroup>();
        for (long offset = 0, i = 0; offset < elements; offset += size, i++)
            list.Add(new SubGroup(unit, (int)i, offset, (int)Math.Min(size, elements - offset)));
        return list.ToArray();
    }

    /// <summary>The unit as the step program numbers layers: the outer block's state is reported as −1 (embedding side).</summary>
    private int ProgramLayer(int unit) => unit == _groups.Length - 1 ? -1 : unit;

    private static string Key(SubGroup g) => $"optim-u{g.Unit}-g{g.Index}";

    /// <summary>Bytes of the sub-group's swap object: [master | m | v] in fp32 (12 per element), or the master and 8-bit moments.</summary>
    private long StateBytes(SubGroup g) => _q8?.StateBytes(g) ?? 12L * g.Elements;

    /// <summary>Sets the master weights of <paramref name="unit"/> and zeroes its moments.</summary>
    public void Initialise(int unit, ReadOnlySpan<float> master)
    {
        if (_tier == StorageTier.Cpu)
        {
            master.CopyTo(_master![unit]);
            return;
        }
        foreach (SubGroup g in _groups[unit])
        {
            AlignedBuffer buffer = _buffers!.Take();
            Span<byte> state = buffer.AsSpan(0, (int)StateBytes(g));
            state.Clear();
            master.Slice((int)g.Offset, g.Elements).CopyTo(MemoryMarshal.Cast<byte, float>(state));
            _store!.Write(Key(g), 0, state);
            _buffers.Add(buffer);
        }
    }

    /// <summary>The current fp32 master weights of <paramref name="unit"/> (a copy).</summary>
    public float[] ReadMaster(int unit)
    {
        if (_tier == StorageTier.Cpu) return (float[])_master![unit].Clone();
        var result = new float[_groups[unit].Sum(g => (long)g.Elements)];
        foreach (SubGroup g in _groups[unit])
        {
            var state = new byte[StateBytes(g)];
            _store!.Read(Key(g), 0, state);
            MemoryMarshal.Cast<byte, float>(state.AsSpan(0, 4 * g.Elements)).CopyTo(result.AsSpan((int)g.Offset));
        }
        return result;
    }

    /// <summary>Master weights and both moments of <paramref name="unit"/> (copies), for checkpoints.</summary>
    public (float[] Master, float[] ExpAvg, float[] ExpAvgSq) ReadState(int unit)
    {
        if (_tier == StorageTier.Cpu && _q8 is null) return ((float[])_master![unit].Clone(), (float[])_m![unit].Clone(), (float[])_v![unit].Clone());
        long n = _groups[unit].Sum(g => (long)g.Elements);
        float[] master = new float[n], m = new float[n], v = new float[n];
        if (_q8 is not null)
        {
            foreach (SubGroup g in _groups[unit])
                _q8.Decode(g, ReadEightBit(g, master.AsSpan((int)g.Offset, g.Elements)), m.AsSpan((int)g.Offset, g.Elements), v.AsSpan((int)g.Offset, g.Elements));
            return (master, m, v);
        }
        foreach (SubGroup g in _groups[unit])
        {
            var state = new float[3 * g.Elements];
            _store!.Read(Key(g), 0, MemoryMarshal.AsBytes(state.AsSpan()));
            state.AsSpan(0, g.Elements).CopyTo(master.AsSpan((int)g.Offset));
            state.AsSpan(g.Elements, g.Elements).CopyTo(m.AsSpan((int)g.Offset));
            state.AsSpan(2 * g.Elements, g.Elements).CopyTo(v.AsSpan((int)g.Offset));
        }
        return (master, m, v);
    }

    /// <summary>Replaces the master weights and moments of <paramref name="unit"/> (restoring a checkpoint).</summary>
    public void SetState(int unit, ReadOnlySpan<float> master, ReadOnlySpan<float> expAvg, ReadOnlySpan<float> expAvgSq)
    {
        if (_q8 is not null)
        {
            SetEightBit(unit, master, expAvg, expAvgSq);
            return;
        }
        if (_tier == StorageTier.Cpu)
        {
            master.CopyTo(_master![unit]);
            expAvg.CopyTo(_m![unit]);
            expAvgSq.CopyTo(_v![unit]);
            return;
        }
        foreach (SubGroup g in _groups[unit])
        {
            var state = new float[3 * g.Elements];
            master.Slice((int)g.Offset, g.Elements).CopyTo(state);
            expAvg.Slice((int)g.Offset, g.Elements).CopyTo(state.AsSpan(g.Elements));
            expAvgSq.Slice((int)g.Offset, g.Elements).CopyTo(state.AsSpan(2 * g.Elements));
            _store!.Write(Key(g), 0, MemoryMarshal.AsBytes(state.AsSpan()));
        }
    }

    /// <summary>
    /// Updates <paramref name="groups"/> of CPU-resident states in order (the in-memory reference trainer): gradients from
    /// <paramref name="gradients"/>, scaled by <paramref name="scaleOf"/>; each updated master slice goes to
    /// <paramref name="writeBack"/>, or, where <paramref name="sink"/> offers a bf16 target, the optimizer writes the working copy there.
    /// </summary>
    /// <exception cref="InvalidOperationException">The states live on NVMe: the step program's OptimizerRead, OptimizerStep and OptimizerWrite update them.</exception>
    public void Update(IReadOnlyList<SubGroup> groups, GradientStore gradients, Func<int, float> scaleOf, int step,
        Action<int, long, ReadOnlySpan<float>> writeBack, IBf16Sink? sink = null)
    {
        if (_tier != StorageTier.Cpu)
            throw new InvalidOperationException("NVMe optimizer states are read, updated and written by the step program's operations.");
        foreach (SubGroup g in groups)
        {
            var range = new Range((int)g.Offset, (int)g.Offset + g.Elements);
            _gradientScratch ??= new float[_groups.SelectMany(x => x).Max(x => x.Elements)];
            ReadOnlySpan<float> gradient = gradients.Get(g, _gradientScratch);
            Span<ushort> bf16 = sink is null ? Span<ushort>.Empty : sink.Bf16Target(g.Unit, g.Offset, g.Elements);
            using (_trace.Begin(ResourceKind.Cpu, OpKind.OptimizerStep, ProgramLayer(g.Unit)))
            {
                if (_q8 is not null)
                    _q8.Step(g, _master![g.Unit].AsSpan(range), gradient, _q8.InRam(g), step, scaleOf(g.Unit), bf16);
                else if (bf16.IsEmpty)
                    _step.Update(_master![g.Unit].AsSpan(range), gradient, _m![g.Unit].AsSpan(range), _v![g.Unit].AsSpan(range), step, scaleOf(g.Unit));
                else
                    _step.Update(_master![g.Unit].AsSpan(range), gradient, _m![g.Unit].AsSpan(range), _v![g.Unit].AsSpan(range), step, scaleOf(g.Unit), bf16);
            }
            _io.Read(StorageTier.Cpu, StateBytes(g));
            _io.Written(StorageTier.Cpu, StateBytes(g));
            if (bf16.IsEmpty) writeBack(g.Unit, g.Offset, _master[g.Unit].AsSpan(range));
            else sink!.CommitBf16(g.Unit, g.Offset, g.Elements);
        }
    }

    public void Dispose()
    {
        DisposeSlots();
        _buffers?.Dispose();
        foreach (AlignedBuffer b in _allBuffers) b.Dispose();
    }
}

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

/// <summary>A parameter tier that can take the optimizer's half-precision output directly (see <see cref="ParameterSwapper.HalfTarget"/>).</summary>
internal interface IHalfSink
{
    /// <summary>
    /// Where to write the half-precision copy of the elements (bf16, or fp16 where <see cref="TargetsFp16"/>), or empty when the
    /// tier needs fp32 values.
    /// </summary>
    Span<ushort> HalfTarget(int unit, long elementOffset, int count);

    /// <summary>Whether <see cref="HalfTarget"/>'s targets take fp16 (fp16 training), not bf16.</summary>
    bool TargetsFp16 => false;

    /// <summary>Publishes what was written.</summary>
    void CommitHalf(int unit, long elementOffset, int count);
}

/// <summary>
/// fp32 master weights and Adam moments of every unit, in CPU RAM or in NVMe swap files, updated
/// sub-group by sub-group. Sub-groups split each unit into runs of at most sub_group_size elements
/// (a sub-group never spans two units, so one layer can be updated on its own in the overlapped
/// schedule). A sub-group's state is one run [master | m | v]: an array in RAM, or an object in the swap
/// store. With the optimizer on NVMe, the sub-groups the step program marks <see cref="SubGroupRef.KeptInRam"/>
/// (the optimizer RAM budget, <see cref="Settings.OptimizerPlacement"/>) stay in RAM and are updated in place;
/// the rest go through the swap slots. The program orders the reads, updates and writes (pipelining is its
/// dependencies) and names the slot each uses (<see cref="Prepare"/>); <see cref="Update"/> serves the
/// in-memory reference trainer. With 8-bit state (<c>--optimizer-state 8bit</c>, <see cref="EightBitMoments"/>) a RAM
/// sub-group keeps its fp32 master in its array and its moments as 8-bit codes and scales; a swapped one is one object
/// [master | m codes | v codes | scales] (<see cref="StateBytes"/>).
/// </summary>
internal sealed partial class OptimizerStates : IDisposable
{
    private readonly StorageTier _tier;
    private readonly IOptimizerStep _step;
    private readonly ISwapStore? _store;
    private readonly IoCounters _io;
    private readonly SpanTrace _trace;
    private readonly SubGroup[][] _groups;
    /// <summary>Per unit and sub-group: its master, m and v in RAM, or null while it lives in the swap store.</summary>
    private readonly RamGroup?[][] _ram;
    private readonly BlockingCollection<AlignedBuffer>? _buffers;
    private readonly List<AlignedBuffer> _allBuffers = [];
    private float[]? _gradientScratch;
    /// <summary>8-bit moments (<c>--optimizer-state 8bit</c>): they replace the fp32 m and v of RAM sub-groups and of the swap objects; null in fp32.</summary>
    private readonly EightBitMoments? _q8;

    public OptimizerStates(IReadOnlyList<long> unitElements, StorageTier tier, long subGroupSize, IOptimizerStep step, ISwapStore? store, IoCounters io, SpanTrace trace,
        EightBitMoments? eightBit = null, IHighHalves? highHalves = null)
    {
        _q8 = eightBit;
        _highHalves = highHalves;
        if (highHalves is not null && tier != StorageTier.Nvme)
            throw new ArgumentException("Split master weights (--master-weights split) need the optimizer states on NVMe (--offload-optimizer nvme).", nameof(highHalves));
        if (subGroupSize < 1) throw new ArgumentOutOfRangeException(nameof(subGroupSize), "sub_group_size must be at least 1.");
        _tier = tier == StorageTier.Nvme ? StorageTier.Nvme : StorageTier.Cpu;
        _step = step;
        _store = store;
        _io = io;
        _trace = trace;
        _groups = unitElements.Select((n, u) => Split(u, n, subGroupSize)).ToArray();
        // On the CPU tier every sub-group is in RAM from the start; on NVMe, Prepare brings in those the program keeps in RAM.
        _ram = _groups.Select(gs => gs.Select(g => _tier == StorageTier.Cpu ? new RamGroup(g.Elements, _q8 is null) : null).ToArray()).ToArray();
        if (_tier == StorageTier.Nvme)
        {
            if (store is null) throw new ArgumentException("NVMe optimizer states need a swap store.", nameof(store));
            long largest = _groups.SelectMany(g => g).Max(SwapBytes);
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

    /// <summary>Whether <paramref name="g"/>'s state is in RAM (the CPU tier, or kept there under the RAM budget).</summary>
    public bool InRam(SubGroup g) => _ram[g.Unit][g.Index] is not null;

    /// <summary>Elements whose state is in RAM and in the swap store.</summary>
    public (long Ram, long Nvme) Placement =>
        (_groups.SelectMany(x => x).Where(InRam).Sum(g => (long)g.Elements), _groups.SelectMany(x => x).Where(g => !InRam(g)).Sum(g => (long)g.Elements));

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

    /// <summary>Bytes of the sub-group's state in RAM: [master | m | v] in fp32 (12 per element), or the master and 8-bit moments (swapped: <see cref="SwapBytes"/>).</summary>
    private long StateBytes(SubGroup g) => _q8?.StateBytes(g) ?? 12L * g.Elements;

    /// <summary>
    /// A sub-group's state in RAM: three arrays, so a sub-group of up to 2^31 − 1 elements fits (one array of 3n would not).
    /// Without <paramref name="fp32Moments"/> (8-bit state) m and v are empty: <see cref="EightBitMoments.InRam"/> holds them.
    /// </summary>
    private sealed class RamGroup(int elements, bool fp32Moments)
    {
        public float[] Master { get; } = new float[elements];
        public float[] M { get; } = fp32Moments ? new float[elements] : [];
        public float[] V { get; } = fp32Moments ? new float[elements] : [];
    }

    /// <summary>The sub-group's state in RAM.</summary>
    private RamGroup RamState(SubGroup g) => _ram[g.Unit][g.Index] ?? throw new InvalidOperationException($"Sub-group {g.Index} of unit {g.Unit} lives on NVMe, not in RAM.");

    /// <summary>
    /// Sets the master weights of <paramref name="unit"/> and zeroes its moments, on every core (<see cref="Chunked"/>): at
    /// start-up these are the first writes to the state's pages, or the swap buffer's bytes before each write.
    /// </summary>
    public void Initialise(int unit, ReadOnlySpan<float> master)
    {
        foreach (SubGroup g in _groups[unit])
        {
            if (InRam(g))
            {
                RamGroup ram = RamState(g);
                Chunked.Copy(master.Slice((int)g.Offset, g.Elements), ram.Master);
                Chunked.Clear<float>(ram.M);
                Chunked.Clear<float>(ram.V);
                if (_q8 is not null) Chunked.Clear(_q8.InRam(g));
                continue;
            }
            AlignedBuffer buffer = _buffers!.Take();
            Span<byte> state = buffer.AsSpan(0, (int)SwapBytes(g));
            // The master (or its remainders) overwrites its bytes; the padding after it and the moments are zeroed.
            Chunked.Clear(state[(int)MasterBytes(g)..]);
            StoreMaster(g, master.Slice((int)g.Offset, g.Elements), state);
            _store!.Write(Key(g), 0, state);
            _buffers.Add(buffer);
        }
    }

    /// <summary>The current fp32 master weights of <paramref name="unit"/> (a copy).</summary>
    public float[] ReadMaster(int unit) => ReadState(unit).Master;

    /// <summary>
    /// Hands <paramref name="unit"/>'s current master weights to <paramref name="take"/> as (element offset, values): fp32 state
    /// in RAM sub-group by sub-group in place, state on NVMe or 8-bit state as one copy of the unit.
    /// </summary>
    public void VisitMaster(int unit, Action<long, ReadOnlySpan<float>> take)
    {
        if (_q8 is null && _groups[unit].All(InRam))
        {
            foreach (SubGroup g in _groups[unit]) take(g.Offset, RamState(g).Master);
            return;
        }
        take(0, ReadMaster(unit));
    }

    /// <summary>Master weights and both moments of <paramref name="unit"/> (copies), for checkpoints.</summary>
    public (float[] Master, float[] ExpAvg, float[] ExpAvgSq) ReadState(int unit)
    {
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
            if (InRam(g))
            {
                RamGroup ram = RamState(g);
                ram.Master.CopyTo(master.AsSpan((int)g.Offset));
                ram.M.CopyTo(m.AsSpan((int)g.Offset));
                ram.V.CopyTo(v.AsSpan((int)g.Offset));
                continue;
            }
            ReadOnlySpan<float> moments = MemoryMarshal.Cast<byte, float>(ReadSwapped(g, master.AsSpan((int)g.Offset, g.Elements)).AsSpan((int)MomentsOffset(g)));
            moments[..g.Elements].CopyTo(m.AsSpan((int)g.Offset));
            moments.Slice(g.Elements, g.Elements).CopyTo(v.AsSpan((int)g.Offset));
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
        foreach (SubGroup g in _groups[unit])
        {
            if (InRam(g))
            {
                RamGroup ram = RamState(g);
                // On every core: at start-up these are the first writes to the state's pages.
                Chunked.Copy(master.Slice((int)g.Offset, g.Elements), ram.Master);
                Chunked.Copy(expAvg.Slice((int)g.Offset, g.Elements), ram.M);
                Chunked.Copy(expAvgSq.Slice((int)g.Offset, g.Elements), ram.V);
                continue;
            }
            var state = new byte[SwapBytes(g)];
            StoreMaster(g, master.Slice((int)g.Offset, g.Elements), state);
            Span<float> moments = MemoryMarshal.Cast<byte, float>(state.AsSpan((int)MomentsOffset(g)));
            Chunked.Copy(expAvg.Slice((int)g.Offset, g.Elements), moments);
            Chunked.Copy(expAvgSq.Slice((int)g.Offset, g.Elements), moments[g.Elements..]);
            _store!.Write(Key(g), 0, state);
        }
    }

    /// <summary>
    /// Updates <paramref name="groups"/> of CPU-resident states in order (the in-memory reference trainer): gradients from
    /// <paramref name="gradients"/>, scaled by <paramref name="scaleOf"/>; each updated master slice goes to
    /// <paramref name="writeBack"/>, or, where <paramref name="sink"/> offers a bf16 target, the optimizer writes the working copy there.
    /// </summary>
    /// <exception cref="InvalidOperationException">The states live on NVMe: the step program's OptimizerRead, OptimizerStep and OptimizerWrite update them.</exception>
    public void Update(IReadOnlyList<SubGroup> groups, GradientStore gradients, Func<int, float> scaleOf, int step,
        Action<int, long, ReadOnlySpan<float>> writeBack, IHalfSink? sink = null)
    {
        if (_tier != StorageTier.Cpu)
            throw new InvalidOperationException("NVMe optimizer states are read, updated and written by the step program's operations.");
        foreach (SubGroup g in groups)
        {
            _gradientScratch ??= new float[_groups.SelectMany(x => x).Max(x => x.Elements)];
            ReadOnlySpan<float> gradient = gradients.Get(g, _gradientScratch);
            Span<ushort> bf16 = CopyTarget(sink, g);
            RamGroup ram = RamState(g);
            Span<float> master = ram.Master, m = ram.M, v = ram.V;
            using (_trace.Begin(ResourceKind.Cpu, OpKind.OptimizerStep, ProgramLayer(g.Unit)))
            {
                if (_q8 is not null) _q8.Step(g, master, gradient, _q8.InRam(g), step, scaleOf(g.Unit), bf16);
                else Adam(master, gradient, m, v, step, scaleOf(g.Unit), bf16, sink?.TargetsFp16 == true);
            }
            _io.Read(StorageTier.Cpu, StateBytes(g));
            _io.Written(StorageTier.Cpu, StateBytes(g));
            if (bf16.IsEmpty) writeBack(g.Unit, g.Offset, master);
            else sink!.CommitHalf(g.Unit, g.Offset, g.Elements);
        }
    }

    public void Dispose()
    {
        DisposeSlots();
        _buffers?.Dispose();
        foreach (AlignedBuffer b in _allBuffers) b.Dispose();
    }
}

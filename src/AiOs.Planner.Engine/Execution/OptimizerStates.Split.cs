using System.Runtime.InteropServices;
using AiOs.Planner.Engine.Optim;
using AiOs.Planner.Optim;

namespace AiOs.Planner.Engine.Execution;

/// <summary>Where the split master's high halves are: the bf16 working parameters (<see cref="ParameterSwapper"/>).</summary>
internal interface IHighHalves
{
    /// <summary>
    /// Copies the bf16 parameters of <paramref name="into"/>.Length elements of <paramref name="unit"/> from
    /// <paramref name="elementOffset"/> (from their file or their host copy); <paramref name="counted"/>: count the bytes as
    /// step traffic (not for checkpoints).
    /// </summary>
    void ReadHigh(int unit, long elementOffset, Span<ushort> into, bool counted);

    /// <summary>
    /// Copies the same bf16 parameters from staging slot <paramref name="stagingSlot"/>, where the step's last ParamRead of
    /// <paramref name="unit"/> left them (<see cref="Simulation.Program.Operation.HighHalvesSlot"/>); counted as a host read.
    /// </summary>
    void CopyStagedHigh(int unit, int stagingSlot, long elementOffset, Span<ushort> into);
}

/// <summary>
/// Split master weights (<c>--master-weights split</c>, <see cref="MasterSplit"/>): a swapped sub-group's object is
/// [remainders (2n bytes, padded to 64) | moments], 2 bytes per element less than [fp32 master | moments]. Its slot holds the
/// object, the gradient, the fp32 master rebuilt for the update and the high halves read with the state:
/// [object | gradient | master | high halves]. Sub-groups kept in RAM keep a whole fp32 master (they are not swapped).
/// </summary>
internal sealed partial class OptimizerStates
{
    /// <summary>The bf16 parameters holding the masters' high halves; null unless the masters are split.</summary>
    private readonly IHighHalves? _highHalves;

    /// <summary>Whether swapped sub-groups keep their master split (<c>--master-weights split</c>).</summary>
    public bool SplitsMaster => _highHalves is not null;

    private static long Pad64(long bytes) => (bytes + 63) / 64 * 64;

    /// <summary>Where a swap object's moments start: after the fp32 master (4n), or after the padded remainders.</summary>
    private long MomentsOffset(SubGroup g) => SplitsMaster ? Pad64(2L * g.Elements) : 4L * g.Elements;

    /// <summary>Bytes of the sub-group's swap object: master (or remainders) then both moments.</summary>
    private long SwapBytes(SubGroup g) => MomentsOffset(g) + (_q8?.MomentBytes(g) ?? 8L * g.Elements);

    /// <summary>Bytes of a slot for the sub-group: object and gradient, with a split master also the rebuilt master and the high halves.</summary>
    private long SlotBytes(SubGroup g) => GradientOffset(g) + 4L * g.Elements + (SplitsMaster ? 6L * g.Elements : 0);

    /// <summary>The remainders at the start of a split swap object.</summary>
    private static Span<short> Remainders(Span<byte> state, SubGroup g) => MemoryMarshal.Cast<byte, short>(state[..(2 * g.Elements)]);

    /// <summary>The fp32 master rebuilt in slot <paramref name="slot"/> (split masters).</summary>
    private Span<float> RebuiltMaster(int slot, SubGroup g) => _slots[slot].AsFloats((GradientOffset(g) + 4L * g.Elements) / sizeof(float), g.Elements);

    /// <summary>The high halves read into slot <paramref name="slot"/> (split masters).</summary>
    private Span<ushort> HighHalves(int slot, SubGroup g) =>
        MemoryMarshal.Cast<byte, ushort>(_slots[slot].AsSpan(GradientOffset(g) + 8L * g.Elements, 2 * g.Elements));

    /// <summary>A split object's master, rebuilt from its remainders and the parameters' high halves (checkpoints; not counted as traffic).</summary>
    private void RebuildMaster(SubGroup g, Span<byte> state, Span<float> master)
    {
        var hi = new ushort[g.Elements];
        _highHalves!.ReadHigh(g.Unit, g.Offset, hi, counted: false);
        MasterSplit.Join(hi, Remainders(state, g), master);
    }

    /// <summary>Bytes at the start of a swap object that <see cref="StoreMaster"/> writes: the fp32 master (4n), or the remainders (2n).</summary>
    private long MasterBytes(SubGroup g) => (SplitsMaster ? 2L : 4L) * g.Elements;

    /// <summary>Writes <paramref name="master"/> into a swap object, on every core: fp32, or its remainders when split.</summary>
    private void StoreMaster(SubGroup g, ReadOnlySpan<float> master, Span<byte> state)
    {
        if (SplitsMaster) Chunked.Map(master, Remainders(state, g), static (from, to) => MasterSplit.Split(from, Span<ushort>.Empty, to));
        else Chunked.Copy(master, MemoryMarshal.Cast<byte, float>(state[..(4 * g.Elements)]));
    }

    /// <summary>Reads a swapped sub-group's master into <paramref name="master"/> and returns its whole object (checkpoints).</summary>
    private byte[] ReadSwapped(SubGroup g, Span<float> master)
    {
        var state = new byte[SwapBytes(g)];
        _store!.Read(Key(g), 0, state);
        if (SplitsMaster) RebuildMaster(g, state, master);
        else MemoryMarshal.Cast<byte, float>(state.AsSpan(0, 4 * g.Elements)).CopyTo(master);
        return state;
    }

    /// <summary>After a split sub-group's read: master = join(high halves, remainders), in its slot, for the update and the write-back.</summary>
    private unsafe void JoinMaster(SubGroup g, int slot)
    {
        fixed (ushort* hi = HighHalves(slot, g))
        fixed (short* lo = Remainders(_slots[slot].AsSpan(0, (int)SwapBytes(g)), g))
        fixed (float* master = RebuiltMaster(slot, g))
        {
            nint h = (nint)hi, l = (nint)lo, m = (nint)master;
            // In parallel chunks, as the update's kernels: one core would take seconds a step over gpt2-xl's 1.5 B masters.
            Chunked.For(g.Elements, (_, start, count) => MasterSplit.Join(new ReadOnlySpan<ushort>((ushort*)h + start, count),
                new ReadOnlySpan<short>((short*)l + start, count), new Span<float>((float*)m + start, count)));
        }
    }

    /// <summary>
    /// After it: the new remainders into the object and the new high halves into <paramref name="bf16"/> when the parameters
    /// take them directly (otherwise the write-back casts the rebuilt master, ties away from zero, to the same bits).
    /// </summary>
    private unsafe void SplitMaster(SubGroup g, int slot, Span<ushort> bf16)
    {
        fixed (float* master = RebuiltMaster(slot, g))
        fixed (ushort* hi = bf16.IsEmpty ? HighHalves(slot, g) : bf16)
        fixed (short* lo = Remainders(_slots[slot].AsSpan(0, (int)SwapBytes(g)), g))
        {
            nint m = (nint)master, h = (nint)hi, l = (nint)lo;
            Chunked.For(g.Elements, (_, start, count) => MasterSplit.Split(new ReadOnlySpan<float>((float*)m + start, count),
                new Span<ushort>((ushort*)h + start, count), new Span<short>((short*)l + start, count)));
        }
    }
}

using System.Runtime.InteropServices;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Optim;
using AiOs.Planner.IO;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Execution;

/// <summary>The optimizer store as the step program's handler: read, update and write the sub-group it is given, in the swap slot the program names.</summary>
internal sealed partial class OptimizerStates
{
    /// <summary>NVMe states: one [master | m | v | gradient] buffer per slot (8-bit: [master | moments | gradient], see <see cref="GradientOffset"/>).</summary>
    private AlignedBuffer[] _slots = [];
    /// <summary>States in RAM: the gradient a read brought into each slot (gradients on NVMe).</summary>
    private float[][] _gradientSlots = [];

    /// <summary>
    /// Brings into RAM the sub-groups <paramref name="program"/> keeps there (<see cref="SubGroupRef.KeptInRam"/>, the
    /// optimizer RAM budget) and allocates the swap slots it uses: state slots for the sub-groups on NVMe, gradient
    /// slots for those in RAM whose gradients are read from NVMe. Call before <see cref="Initialise"/>.
    /// </summary>
    public void Prepare(StepProgram program)
    {
        var optimizerOps = program.Ops.Where(o => o.SubGroup is not null && o.Kind is OpKind.OptimizerRead or OpKind.OptimizerStep or OpKind.OptimizerWrite).ToList();
        if (_tier == StorageTier.Nvme)
            foreach (SubGroupRef kept in optimizerOps.Select(o => o.SubGroup!.Value).Where(g => g.KeptInRam).Distinct())
            {
                SubGroup g = GroupOf(UnitOf(kept.Unit), kept);
                _ram[g.Unit][g.Index] ??= new RamGroup(g.Elements, _q8 is null);
            }
        var nvmeOps = optimizerOps.Where(o => !InRam(GroupOf(UnitOf(o.SubGroup!.Value.Unit), o.SubGroup!.Value))).ToList();
        var ramOps = optimizerOps.Except(nvmeOps).ToList();
        int nvmeSlots = nvmeOps.Select(o => o.Slot + 1).DefaultIfEmpty(0).Max();
        int ramSlots = ramOps.Select(o => o.Slot + 1).DefaultIfEmpty(0).Max();
        long largestNvme = _groups.SelectMany(g => g).Where(g => !InRam(g)).Select(SlotBytes).DefaultIfEmpty(0).Max();
        int largestRam = _groups.SelectMany(g => g).Where(InRam).Select(g => g.Elements).DefaultIfEmpty(0).Max();
        long bytes = (largestNvme + AlignedBuffer.Alignment - 1) / AlignedBuffer.Alignment * AlignedBuffer.Alignment;
        DisposeSlots();
        _slots = Enumerable.Range(0, largestNvme > 0 ? nvmeSlots : 0).Select(_ => new AlignedBuffer(new Bytes(bytes))).ToArray();
        _gradientSlots = Enumerable.Range(0, ramSlots).Select(_ => new float[largestRam]).ToArray();
    }

    /// <summary>The engine's unit number of the program's <paramref name="unit"/>: layers by index, the outer block last.</summary>
    private int UnitOf(UnitId unit) => unit.Kind == UnitKind.Layer ? unit.Number : _groups.Length - 1;

    /// <summary>The engine's sub-group the program's <paramref name="g"/> names in unit <paramref name="unit"/>.</summary>
    /// <exception cref="InvalidOperationException">The program's bounds differ from the engine's.</exception>
    public SubGroup GroupOf(int unit, SubGroupRef g)
    {
        var groups = _groups[unit];
        if (g.Index >= groups.Length || groups[g.Index].Offset != g.Offset || groups[g.Index].Elements != g.Elements)
            throw new InvalidOperationException($"The program's sub-group {g.Index} of {g.Unit} ({g.Offset}+{g.Elements}) is not the engine's; the program was built for other settings.");
        return groups[g.Index];
    }

    /// <summary>
    /// OptimizerRead: the sub-group's state (NVMe) and gradient (when it lives on NVMe) into slot <paramref name="slot"/>; a split
    /// master's high halves from staging slot <paramref name="highHalvesSlot"/> when the program names one, else from the parameters.
    /// </summary>
    public void Read(SubGroup g, int slot, GradientStore gradients, int highHalvesSlot = -1)
    {
        if (!InRam(g))
        {
            AlignedBuffer buffer = _slots[slot];
            Span<float> gradientPart = buffer.AsFloats(GradientOffset(g) / sizeof(float), g.Elements);
            _store!.Read(Key(g), 0, buffer.AsSpan(0, (int)SwapBytes(g)));
            ReadOnlySpan<float> gradient = gradients.Get(g, gradientPart);
            if (!gradient.Overlaps(gradientPart)) gradient.CopyTo(gradientPart);
            _io.Read(StorageTier.Nvme, SwapBytes(g));
            // A split master's high halves: the bf16 parameters as they are now (their file or host copy), joined with the
            // remainders now, so an update skipped for a non-finite gradient leaves the write-back the master as it was.
            if (SplitsMaster)
            {
                if (highHalvesSlot >= 0) _highHalves!.CopyStagedHigh(g.Unit, highHalvesSlot, g.Offset, HighHalves(slot, g));
                else _highHalves!.ReadHigh(g.Unit, g.Offset, HighHalves(slot, g), counted: true);
                JoinMaster(g, slot);
            }
            return;
        }
        Span<float> into = _gradientSlots[slot].AsSpan(0, g.Elements);
        ReadOnlySpan<float> read = gradients.Get(g, into);
        if (!read.Overlaps(into)) read.CopyTo(into);
    }

    /// <summary>
    /// OptimizerStep: AdamW on the sub-group (its state and gradient in <paramref name="slot"/>, or, for a state in RAM,
    /// in place with the gradient in <paramref name="slot"/> or, when it is −1, in the gradient store); the updated master
    /// goes to <paramref name="writeBack"/> or the bf16 <paramref name="sink"/> (both null when a ParamWriteBack operation writes it).
    /// </summary>
    public void Step(SubGroup g, int slot, GradientStore gradients, float scale, int step, Action<int, long, ReadOnlySpan<float>>? writeBack, IHalfSink? sink)
    {
        Span<ushort> bf16 = CopyTarget(sink, g);
        UpdateSubGroup(g, slot, gradients, scale, step, bf16, sink?.TargetsFp16 == true);
        if (!bf16.IsEmpty) sink!.CommitHalf(g.Unit, g.Offset, g.Elements);
        else writeBack?.Invoke(g.Unit, g.Offset, Master(g, slot));
    }

    /// <summary>The update of <see cref="Step"/>, writing the bf16 copy into <paramref name="bf16"/> unless it is empty.</summary>
    private void UpdateSubGroup(SubGroup g, int slot, GradientStore gradients, float scale, int step, Span<ushort> bf16, bool fp16)
    {
        if (_q8 is not null)
        {
            StepEightBit(g, slot, gradients, scale, step, bf16);
            return;
        }
        if (!InRam(g))
        {
            AlignedBuffer buffer = _slots[slot];
            int n = g.Elements;
            Span<float> moments = buffer.AsFloats(MomentsOffset(g) / sizeof(float), 2 * n);
            ReadOnlySpan<float> gradient = buffer.AsFloats(GradientOffset(g) / sizeof(float), n);
            if (!SplitsMaster)
            {
                Adam(buffer.AsFloats(0, n), gradient, moments[..n], moments[n..], step, scale, bf16, fp16);
                return;
            }
            // The kernels' bf16 copy rounds ties to even; a split master's high half rounds them away from zero (SplitMaster writes it).
            Adam(RebuiltMaster(slot, g), gradient, moments[..n], moments[n..], step, scale, Span<ushort>.Empty, fp16: false);
            SplitMaster(g, slot, bf16);
            return;
        }
        RamGroup ram = RamState(g);
        _io.Read(StorageTier.Cpu, 12L * g.Elements);
        _io.Written(StorageTier.Cpu, 12L * g.Elements);
        // A bf16 store's gradient goes to CpuAdam as it is, widened as it is read: no fp32 copy of it.
        if (!fp16 && slot < 0 && _step is CpuAdamStep fused && gradients.TryGetBf16(g, out ReadOnlySpan<ushort> bits))
        {
            fused.UpdateBf16Gradients(ram.Master, bits, ram.M, ram.V, step, scale, bf16);
            return;
        }
        _gradientScratch ??= new float[_groups.SelectMany(x => x).Max(x => x.Elements)];
        Adam(ram.Master, slot >= 0 ? _gradientSlots[slot].AsSpan(0, g.Elements) : gradients.Get(g, _gradientScratch), ram.M, ram.V, step, scale, bf16, fp16);
    }

    /// <summary>
    /// The configured AdamW on fp32 gradients, with the half-precision copy written in its pass unless <paramref name="half"/>
    /// is empty: fp16 where <paramref name="fp16"/>, else bf16.
    /// </summary>
    private void Adam(Span<float> master, ReadOnlySpan<float> gradient, Span<float> m, Span<float> v, int step, float scale, Span<ushort> half, bool fp16)
    {
        if (half.IsEmpty) _step.Update(master, gradient, m, v, step, scale);
        else if (fp16) _step.Update(master, gradient, m, v, step, scale, MemoryMarshal.Cast<ushort, Half>(half));
        else _step.Update(master, gradient, m, v, step, scale, half);
    }

    /// <summary>
    /// The sink's half-precision target for <paramref name="g"/>, or empty: no sink, or fp16 targets where the 8-bit update
    /// runs (it writes bf16 copies only; the master then takes the write-back).
    /// </summary>
    private Span<ushort> CopyTarget(IHalfSink? sink, SubGroup g) =>
        sink is null || sink.TargetsFp16 && _q8 is not null ? Span<ushort>.Empty : sink.HalfTarget(g.Unit, g.Offset, g.Elements);

    /// <summary>OptimizerWrite: the sub-group's state from slot <paramref name="slot"/> to its swap file.</summary>
    /// <exception cref="InvalidOperationException">The sub-group's state is in RAM: the program has no write for it.</exception>
    public void Write(SubGroup g, int slot)
    {
        if (InRam(g)) throw new InvalidOperationException($"Sub-group {g.Index} of unit {g.Unit} is kept in RAM; the program was built for other settings.");
        _store!.Write(Key(g), 0, _slots[slot].AsSpan(0, (int)SwapBytes(g)));
        _io.Written(StorageTier.Nvme, SwapBytes(g));
    }

    /// <summary>The sub-group's updated master weights: in slot <paramref name="slot"/> (NVMe states) or in RAM.</summary>
    public ReadOnlySpan<float> Master(SubGroup g, int slot) =>
        InRam(g) ? RamState(g).Master : SplitsMaster ? RebuiltMaster(slot, g) : _slots[slot].AsFloats(0, g.Elements);

    /// <summary>
    /// Where a slot keeps the sub-group's gradient: right after an fp32 state (12 bytes per element), after an 8-bit or
    /// split state 64-byte aligned (its length need not be a multiple of 4).
    /// </summary>
    private long GradientOffset(SubGroup g) => _q8 is null && !SplitsMaster ? 12L * g.Elements : Pad64(SwapBytes(g));

    private void DisposeSlots()
    {
        foreach (AlignedBuffer b in _slots) b.Dispose();
        _slots = [];
    }
}

using System.Runtime.InteropServices;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Optim;
using AiOs.Planner.IO;

namespace AiOs.Planner.Engine.Execution;

/// <summary>The optimizer store with 8-bit moments (<see cref="EightBitMoments"/>): where its master and moments are read, updated and written.</summary>
internal sealed partial class OptimizerStates
{
    /// <summary>Copies the sub-group's master into <paramref name="master"/> and returns its 8-bit moments (from RAM, or read from its swap object).</summary>
    private ReadOnlySpan<byte> ReadEightBit(SubGroup g, Span<float> master)
    {
        if (InRam(g))
        {
            RamState(g).Master.CopyTo(master);
            return _q8!.InRam(g);
        }
        return ReadSwapped(g, master).AsSpan((int)MomentsOffset(g));
    }

    /// <summary>
    /// Sets a unit's master and quantises its fp32 moments into each sub-group (the start-up's zero moments of state in RAM, or
    /// restoring a checkpoint), on every core.
    /// </summary>
    private void SetEightBit(int unit, ReadOnlySpan<float> master, ReadOnlySpan<float> expAvg, ReadOnlySpan<float> expAvgSq)
    {
        foreach (SubGroup g in _groups[unit])
        {
            var range = new Range((int)g.Offset, (int)g.Offset + g.Elements);
            if (InRam(g))
            {
                Chunked.Copy(master[range], RamState(g).Master);
                _q8!.Encode(g, expAvg[range], expAvgSq[range], _q8.InRam(g));
                continue;
            }
            var state = new byte[SwapBytes(g)];
            StoreMaster(g, master[range], state);
            _q8!.Encode(g, expAvg[range], expAvgSq[range], state.AsSpan((int)MomentsOffset(g)));
            _store!.Write(Key(g), 0, state);
        }
    }

    /// <summary>OptimizerStep with 8-bit moments: the state in slot <paramref name="slot"/> (swapped) or in RAM, one BlockwiseAdam pass per block.</summary>
    private void StepEightBit(SubGroup g, int slot, GradientStore gradients, float scale, int step, Span<ushort> bf16)
    {
        int n = g.Elements;
        if (!InRam(g))
        {
            AlignedBuffer buffer = _slots[slot];
            Span<float> master = SplitsMaster ? RebuiltMaster(slot, g) : buffer.AsFloats(0, n);
            _q8!.Step(g, master, buffer.AsFloats(GradientOffset(g) / sizeof(float), n), buffer.AsSpan(MomentsOffset(g), (int)_q8.MomentBytes(g)), step, scale,
                SplitsMaster ? Span<ushort>.Empty : bf16);
            if (SplitsMaster) SplitMaster(g, slot, bf16);
            return;
        }
        _gradientScratch ??= new float[_groups.SelectMany(x => x).Max(x => x.Elements)];
        ReadOnlySpan<float> gradient = slot >= 0 ? _gradientSlots[slot].AsSpan(0, n) : gradients.Get(g, _gradientScratch);
        _io.Read(StorageTier.Cpu, StateBytes(g));
        _io.Written(StorageTier.Cpu, StateBytes(g));
        _q8!.Step(g, RamState(g).Master, gradient, _q8.InRam(g), step, scale, bf16);
    }
}

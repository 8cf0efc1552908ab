using AiOs.Planner.Units;

namespace AiOs.Planner.Simulation.Program;

/// <summary>
/// Split master weights' high halves taken from the staging slot a unit's last parameter read of the step filled
/// (<see cref="ProgramShape.StagedHighHalves"/>, <see cref="Operation.HighHalvesSlot"/>), rather than read from NVMe again.
/// </summary>
internal sealed partial class ProgramBuilder
{
    // Per unit, its last ParamRead so far: the operation and the staging slot it filled.
    private readonly Dictionary<UnitId, (int Op, int Slot)> _lastParamRead = [];
    // Per staging slot, the ParamRead that filled it last.
    private readonly Dictionary<int, int> _slotFilledBy = [];
    // Per staging slot, the optimizer reads that take high halves from it since it was filled: its next ParamRead waits for them.
    private readonly Dictionary<int, List<int>> _slotReaders = [];

    /// <summary>
    /// <paramref name="deps"/> of a ParamRead into staging slot <paramref name="slot"/>, with the optimizer reads that still copy
    /// high halves out of it (the NVMe resource serves them first anyway: they were emitted before it).
    /// </summary>
    private int[] StagingReadDeps(int slot, int[] deps) =>
        _slotReaders.TryGetValue(slot, out var readers) && readers.Count > 0 ? [.. deps, .. readers] : deps;

    /// <summary>Notes ParamRead <paramref name="op"/> of <paramref name="unit"/> into staging slot <paramref name="slot"/>: the slot's earlier readers are done with it.</summary>
    private void NoteParamRead(UnitId unit, int op, int slot)
    {
        _lastParamRead[unit] = (op, slot);
        _slotFilledBy[slot] = op;
        _slotReaders.Remove(slot);
    }

    /// <summary>
    /// Where a sub-group of <paramref name="unit"/> takes its split master's high halves from: the staging slot (and the
    /// ParamRead that filled it) when the unit's last parameter read of the step is still there, no later read having reused
    /// the slot; (−1, −1) when they come from the unit's file (or the master is not split, or is not swapped, or the unit's
    /// parameters are not read from NVMe). The delayed update's sub-groups are the previous step's: never from staging.
    /// </summary>
    private (int Slot, int Read) StagedHighHalves(UnitId unit, bool statesOnNvme)
    {
        if (!_shape.StagedHighHalves || !CopiesIntoSlots || DelaysUpdate || _gpus > 1 || SplitMasterHighHalves(unit, 1, statesOnNvme) == Bytes.Zero)
            return (-1, -1);
        return _lastParamRead.TryGetValue(unit, out var last) && _slotFilledBy[last.Slot] == last.Op ? (last.Slot, last.Op) : (-1, -1);
    }

    /// <summary>Notes that optimizer read <paramref name="op"/> copies high halves out of staging slot <paramref name="slot"/>.</summary>
    private void NoteStagedReader(int slot, int op)
    {
        if (!_slotReaders.TryGetValue(slot, out var readers)) _slotReaders[slot] = readers = [];
        readers.Add(op);
    }
}

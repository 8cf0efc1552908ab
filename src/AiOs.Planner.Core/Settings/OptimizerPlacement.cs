using AiOs.Planner.Units;

namespace AiOs.Planner.Settings;

/// <summary>
/// The one rule for mixed placement of the optimizer state (<see cref="TrainingSettings.OptimizerRamBudget"/>): with
/// the optimizer on NVMe, the sub-groups updated LAST in the step keep their state (fp32 master, Adam m and v) in
/// host RAM, as many whole sub-groups as the budget holds, walking back from the last; every other sub-group is
/// swapped through the NVMe buffers. The planner, the step program, the engine and the tuner all call this.
/// </summary>
/// <remarks>
/// Why the last ones: an NVMe sub-group costs a read before its update and a write after it. Early in the update
/// order that traffic overlaps work still to come (the rest of backward under the overlapped schedule; the updates
/// of later sub-groups, whose CPU time hides the previous write, under DeepSpeed's); the last sub-groups have
/// nothing after them in the step, so their read and write would be exposed, and their trailing writes would
/// compete with the next step's first parameter reads. Keeping them in RAM removes the exposed tail first.
/// A suffix also makes the split monotone: a larger budget keeps a superset of sub-groups in RAM.
/// </remarks>
public static class OptimizerPlacement
{
    /// <summary>
    /// For each sub-group in update order (<paramref name="elementsInUpdateOrder"/>, elements each), whether its state
    /// stays in RAM under the settings' optimizer RAM budget at <paramref name="stateBytesPerElement"/> bytes per element
    /// (the state format's: 12 for fp32, <see cref="Optim.OptimizerStateFormats.BytesPerParameter"/> for 8-bit). All
    /// false when the optimizer is not on NVMe or there is no budget: nothing is split then.
    /// </summary>
    public static bool[] InRam(IReadOnlyList<long> elementsInUpdateOrder, double stateBytesPerElement, TrainingSettings settings)
    {
        ArgumentNullException.ThrowIfNull(elementsInUpdateOrder);
        ArgumentNullException.ThrowIfNull(settings);
        return settings.OptimizerOffload == OffloadTier.Nvme
            ? InRam(elementsInUpdateOrder, stateBytesPerElement, settings.OptimizerRamBudget ?? Bytes.Zero)
            : new bool[elementsInUpdateOrder.Count];
    }

    /// <summary>The rule itself: the longest suffix of the update order whose states fit in <paramref name="budget"/>.</summary>
    public static bool[] InRam(IReadOnlyList<long> elementsInUpdateOrder, double stateBytesPerElement, Bytes budget)
    {
        ArgumentNullException.ThrowIfNull(elementsInUpdateOrder);
        var inRam = new bool[elementsInUpdateOrder.Count];
        long left = Math.Max(0, budget.Value);
        for (int i = inRam.Length - 1; i >= 0; i--)
        {
            // 8-bit state has a fractional rate (its block scales): round each sub-group up.
            long bytes = (long)Math.Ceiling(elementsInUpdateOrder[i] * stateBytesPerElement);
            if (bytes > left) break;
            inRam[i] = true;
            left -= bytes;
        }
        return inRam;
    }

    /// <summary>Elements of the sub-groups kept in RAM and of those on NVMe.</summary>
    public static (long Ram, long Nvme) Split(IReadOnlyList<long> elementsInUpdateOrder, bool[] inRam)
    {
        ArgumentNullException.ThrowIfNull(elementsInUpdateOrder);
        ArgumentNullException.ThrowIfNull(inRam);
        long ram = 0, nvme = 0;
        for (int i = 0; i < inRam.Length; i++)
        {
            if (inRam[i]) ram += elementsInUpdateOrder[i];
            else nvme += elementsInUpdateOrder[i];
        }
        return (ram, nvme);
    }

    /// <summary>
    /// The sizes of the bundled engine's sub-groups in update order: each unit (the decoder layers of
    /// <paramref name="layerElements"/> each, then the outer block of <paramref name="outerElements"/>) cut into runs of at
    /// most sub_group_size. Both schedules give these sizes in this order (after backward: layers 0…L−1, then the outer
    /// block; overlapped: L−1…0, then the outer block, and every layer has the same size).
    /// </summary>
    public static IReadOnlyList<long> EngineUpdateOrder(int layers, long layerElements, long outerElements, TrainingSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var units = Enumerable.Repeat(layerElements, layers).Append(outerElements);
        long size = Math.Max(1, settings.SubGroupSize);
        var groups = new List<long>();
        foreach (long n in units)
            for (long offset = 0; offset < n; offset += size) groups.Add(Math.Min(size, n - offset));
        return groups;
    }
}

using AiOs.Planner.Units;

namespace AiOs.Planner.Memory;

/// <summary>The memory tiers a plan accounts for.</summary>
public enum MemoryTier
{
    /// <summary>One GPU's device memory.</summary>
    Gpu,
    /// <summary>Page-locked host RAM of one node.</summary>
    CpuPinned,
    /// <summary>Ordinary host RAM of one node.</summary>
    CpuPageable,
    /// <summary>NVMe space of one node.</summary>
    Nvme,
}

/// <summary>One named part of a tier's use, e.g. "optimizer states" or "activations".</summary>
public sealed record MemoryItem(string Name, Bytes Bytes, string? Note = null);

/// <summary>The use of one tier at its peak, as the sum of its items.</summary>
public sealed record TierUse(MemoryTier Tier, IReadOnlyList<MemoryItem> Items, Bytes Capacity)
{
    /// <summary>The peak: the sum of the items (by construction, never anything else).</summary>
    public Bytes Peak => Items.Aggregate(Bytes.Zero, (sum, i) => sum + i.Bytes);

    public bool Fits => Peak <= Capacity;

    public Bytes Of(string name) => Items.Where(i => i.Name == name).Aggregate(Bytes.Zero, (s, i) => s + i.Bytes);
}

/// <summary>
/// Peak memory per tier with its breakdown. GPU figures are per GPU; host and NVMe figures per node.
/// <see cref="GpuAllocatedPeak"/> is what PyTorch's <c>max_memory_allocated</c> reports; the GPU tier
/// adds the CUDA context and allocator slack (<see cref="GpuReserve"/>) on top for the fit check.
/// </summary>
public sealed record MemoryPlan
{
    public required TierUse Gpu { get; init; }
    public required TierUse CpuPinned { get; init; }
    public required TierUse CpuPageable { get; init; }
    public required TierUse Nvme { get; init; }
    /// <summary>The phase at which the GPU peak happens (end of forward, end of backward, optimizer).</summary>
    public required string GpuPeakPhase { get; init; }
    /// <summary>CUDA context and caching-allocator slack, not counted by PyTorch as allocated.</summary>
    public required Bytes GpuReserve { get; init; }
    /// <summary>Model states per GPU as DeepSpeed's estimators count them (parameters, gradients, optimizer, largest layer).</summary>
    public required Bytes ModelStatesGpu { get; init; }
    /// <summary>Model states per node in host RAM, without DeepSpeed's 1.5× buffer factor.</summary>
    public required Bytes ModelStatesCpu { get; init; }

    /// <summary>Peak bytes allocated on one GPU by tensors.</summary>
    public Bytes GpuAllocatedPeak => Gpu.Peak - GpuReserve;

    /// <summary>Peak host RAM of one node, pinned and pageable.</summary>
    public Bytes CpuPeak => CpuPinned.Peak + CpuPageable.Peak;

    public IEnumerable<TierUse> Tiers => [Gpu, CpuPinned, CpuPageable, Nvme];
}

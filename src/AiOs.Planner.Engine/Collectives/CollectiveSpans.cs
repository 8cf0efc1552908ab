namespace AiOs.Planner.Engine.Collectives;

/// <summary>
/// Span overloads of <see cref="ICollectives"/> for host memory (the shared-memory implementation, and tests). bf16
/// values travel as their raw 16 bits in <see cref="ushort"/>s. Lengths are checked here, so a wrong buffer is an
/// <see cref="ArgumentException"/> on the rank that passed it, not a collective that disagrees across ranks.
/// </summary>
public static unsafe class CollectiveSpans
{
    /// <summary>All-gather of fp32 shards: <paramref name="whole"/> must hold <see cref="ICollectives.WorldSize"/> × the shard.</summary>
    public static void AllGather(this ICollectives c, ReadOnlySpan<float> shard, Span<float> whole) => Gather(c, shard, whole, CollectiveElement.Float32);

    /// <summary>All-gather of bf16 shards (raw bits).</summary>
    public static void AllGather(this ICollectives c, ReadOnlySpan<ushort> shard, Span<ushort> whole) => Gather(c, shard, whole, CollectiveElement.BFloat16);

    /// <summary>Reduce-scatter of fp32: <paramref name="whole"/> holds <see cref="ICollectives.WorldSize"/> × <paramref name="shard"/>'s length.</summary>
    public static void ReduceScatter(this ICollectives c, ReadOnlySpan<float> whole, Span<float> shard, ReduceOperation operation = ReduceOperation.Sum) =>
        Scatter(c, whole, shard, CollectiveElement.Float32, operation);

    /// <summary>Reduce-scatter of bf16 (raw bits); the reduction runs in fp32 and rounds once.</summary>
    public static void ReduceScatter(this ICollectives c, ReadOnlySpan<ushort> whole, Span<ushort> shard, ReduceOperation operation = ReduceOperation.Sum) =>
        Scatter(c, whole, shard, CollectiveElement.BFloat16, operation);

    /// <summary>All-reduce of fp32 in place.</summary>
    public static void AllReduce(this ICollectives c, Span<float> data, ReduceOperation operation = ReduceOperation.Sum)
    {
        RequireHost(c);
        fixed (float* p = data) c.AllReduce((nint)p, (nint)p, data.Length, CollectiveElement.Float32, operation);
    }

    /// <summary>All-reduce of bf16 (raw bits) in place.</summary>
    public static void AllReduce(this ICollectives c, Span<ushort> data, ReduceOperation operation = ReduceOperation.Sum)
    {
        RequireHost(c);
        fixed (ushort* p = data) c.AllReduce((nint)p, (nint)p, data.Length, CollectiveElement.BFloat16, operation);
    }

    /// <summary>Broadcast of fp32 from <paramref name="root"/>.</summary>
    public static void Broadcast(this ICollectives c, Span<float> data, int root)
    {
        RequireHost(c);
        fixed (float* p = data) c.Broadcast((nint)p, data.Length, CollectiveElement.Float32, root);
    }

    /// <summary>Broadcast of bf16 (raw bits) from <paramref name="root"/>.</summary>
    public static void Broadcast(this ICollectives c, Span<ushort> data, int root)
    {
        RequireHost(c);
        fixed (ushort* p = data) c.Broadcast((nint)p, data.Length, CollectiveElement.BFloat16, root);
    }

    private static void Gather<T>(ICollectives c, ReadOnlySpan<T> shard, Span<T> whole, CollectiveElement element) where T : unmanaged
    {
        RequireHost(c);
        if (whole.Length != (long)shard.Length * c.WorldSize)
            throw new ArgumentException($"All-gather of {shard.Length} elements per rank over {c.WorldSize} ranks needs a {shard.Length * c.WorldSize}-element result; got {whole.Length}.", nameof(whole));
        fixed (T* s = shard)
        fixed (T* w = whole)
            c.AllGather((nint)s, (nint)w, shard.Length, element);
    }

    private static void Scatter<T>(ICollectives c, ReadOnlySpan<T> whole, Span<T> shard, CollectiveElement element, ReduceOperation operation) where T : unmanaged
    {
        RequireHost(c);
        if (whole.Length != (long)shard.Length * c.WorldSize)
            throw new ArgumentException($"Reduce-scatter into {shard.Length} elements per rank over {c.WorldSize} ranks needs a {shard.Length * c.WorldSize}-element input; got {whole.Length}.", nameof(whole));
        fixed (T* w = whole)
        fixed (T* s = shard)
            c.ReduceScatter((nint)w, (nint)s, shard.Length, element, operation);
    }

    private static void RequireHost(ICollectives c)
    {
        ArgumentNullException.ThrowIfNull(c);
        if (c.OnDevice) throw new InvalidOperationException($"{c.GetType().Name} works on device memory; pass device addresses to its ICollectives methods, not host spans.");
    }
}

/// <summary>bfloat16 ↔ fp32 conversions (round to nearest even), for reductions that accumulate in fp32.</summary>
public static class BFloat16Bits
{
    /// <summary>The fp32 value of bf16 bits (exact).</summary>
    public static float ToSingle(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    /// <summary>The bf16 bits nearest <paramref name="value"/> (ties to even; NaN stays NaN).</summary>
    public static ushort FromSingle(float value)
    {
        if (float.IsNaN(value)) return 0x7FC0;
        uint bits = BitConverter.SingleToUInt32Bits(value);
        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }
}

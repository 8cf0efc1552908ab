using AiOs.Planner.Engine.Collectives;
using FsCheck;
using FsCheck.Fluent;

namespace AiOs.Planner.Engine.Tests;

/// <summary>The shared-memory collectives with 2–4 ranks as threads: exact results, and named errors when a rank misbehaves.</summary>
public class SharedMemoryCollectivesTests
{
    /// <summary>One random exchange: world, elements per rank (up to several regions), element type, reduction and data seed.</summary>
    private sealed record Case(int World, int Count, CollectiveElement Element, ReduceOperation Operation, int Seed)
    {
        public float[] Data(int rank, int length)
        {
            var random = new Random(Seed * 31 + rank);
            float[] values = [.. Enumerable.Range(0, length).Select(_ => (float)((random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-4, 4))))];
            // bf16 inputs are bf16 values: round them first, so the reference and the collectives start from the same numbers.
            return Element == CollectiveElement.Float32 ? values : [.. values.Select(v => BFloat16Bits.ToSingle(BFloat16Bits.FromSingle(v)))];
        }
    }

    private static readonly Gen<Case> Cases =
        from world in Gen.Choose(2, 4)
        from count in Gen.Choose(0, 1200)
        from element in Gen.Elements(CollectiveElement.Float32, CollectiveElement.BFloat16)
        from operation in Gen.Elements(ReduceOperation.Sum, ReduceOperation.Mean)
        from seed in Gen.Choose(0, 1_000_000)
        select new Case(world, count, element, operation, seed);

    private static void ForAll(Func<Case, bool> property) =>
        Prop.ForAll(Cases.ToArbitrary(), property).Check(Config.QuickThrowOnFailure.WithMaxTest(25));

    [Fact]
    public void Given_a_unit_sharded_by_ShardLayout_When_all_gathered_Then_every_rank_has_the_unit_bit_for_bit() => ForAll(c =>
    {
        int elements = c.Count * c.World - c.Seed % c.World; // not always a multiple of the world: padding is exercised
        var layout = new ShardLayout(Math.Max(0, elements), c.World);
        float[] unit = c.Data(99, (int)layout.Elements);
        float[][] results = CollectiveThreads.Run(c.World, col =>
        {
            float[] shard = new float[layout.ShardElements];
            layout.Shard<float>(unit, col.Rank, shard);
            float[] gathered = new float[layout.PaddedElements];
            col.AllGather(shard, gathered);
            float[] back = new float[layout.Elements];
            layout.Unshard<float>(gathered, back);
            return back;
        });
        return results.All(r => Same(r, unit));
    });

    [Fact]
    public void Given_any_inputs_When_reduce_scattered_then_all_gathered_Then_the_result_is_the_all_reduce_bit_for_bit() => ForAll(c =>
    {
        (float[] Composed, float[] Direct)[] results = CollectiveThreads.Run(c.World, col =>
        {
            float[] data = c.Data(col.Rank, c.Count * c.World);
            float[] shard = Reduce(col, c, data, scatter: true);
            float[] composed = new float[c.Count * c.World];
            if (c.Element == CollectiveElement.Float32) col.AllGather(shard, composed);
            else composed = Widen(GatherBf16(col, Narrow(shard)));
            return (composed, Reduce(col, c, data, scatter: false));
        });
        return results.All(r => Same(r.Composed, r.Direct)) && results.All(r => Same(r.Direct, results[0].Direct));
    });

    [Fact]
    public void Given_any_inputs_When_all_reduced_Then_every_rank_has_the_serial_rank_order_reduction_bit_for_bit() => ForAll(c =>
    {
        float[] expected = SerialReduction(c);
        float[][] results = CollectiveThreads.Run(c.World, col => Reduce(col, c, c.Data(col.Rank, c.Count * c.World), scatter: false));
        return results.All(r => Same(r, expected));
    });

    [Fact]
    public void Given_any_root_When_broadcast_Then_every_rank_has_the_roots_data() => ForAll(c =>
    {
        int root = c.Seed % c.World;
        float[] expected = c.Data(root, c.Count);
        float[][] results = CollectiveThreads.Run(c.World, col =>
        {
            float[] data = c.Data(col.Rank, c.Count);
            col.Broadcast(data, root);
            return data;
        });
        return results.All(r => Same(r, expected));
    });

    [Fact]
    public void Given_a_rank_that_closes_its_collectives_When_another_waits_for_it_Then_the_error_names_that_rank()
    {
        Exception?[] errors = CollectiveThreads.Outcomes(2, (rank, c) =>
        {
            if (rank == 1) { c.Dispose(); return; }
            c.AllReduce(new float[8]);
        }, TimeSpan.FromSeconds(30));
        var e = Assert.IsType<CollectiveException>(errors[0]);
        Assert.Equal(1, e.FailedRank);
        Assert.Contains("rank 1", e.Message, StringComparison.Ordinal);
        Assert.Contains("AllReduce", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_a_rank_that_stops_answering_When_the_timeout_passes_Then_the_waiting_rank_fails_naming_it()
    {
        using var release = new ManualResetEventSlim();
        Exception?[] errors = CollectiveThreads.Outcomes(3, (rank, c) =>
        {
            if (rank == 2) { release.Wait(TimeSpan.FromSeconds(30)); return; } // alive, but never calls
            try
            {
                c.AllReduce(new float[8]);
            }
            finally
            {
                if (rank == 0) release.Set();
            }
        }, TimeSpan.FromSeconds(1));
        var e = Assert.IsType<CollectiveException>(errors[0]);
        Assert.Equal(2, e.FailedRank);
        Assert.Contains("rank 2 (pid", e.Message, StringComparison.Ordinal);
        Assert.Contains("waited 1 s", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_ranks_that_call_different_collectives_When_they_meet_Then_each_fails_naming_the_other_and_both_calls()
    {
        Exception?[] errors = CollectiveThreads.Outcomes(2, (rank, c) =>
        {
            if (rank == 0) c.AllReduce(new float[4]);
            else c.Broadcast(new float[4], 0);
        }, TimeSpan.FromSeconds(30));
        var e = Assert.IsType<CollectiveException>(errors[0]);
        Assert.Equal(1, e.FailedRank);
        Assert.Contains("AllReduce", e.Message, StringComparison.Ordinal);
        Assert.Contains("Broadcast", e.Message, StringComparison.Ordinal);
        Assert.IsType<CollectiveException>(errors[1]);
    }

    [Fact]
    public void Given_a_rank_that_never_starts_When_rank_0_joins_Then_it_fails_naming_the_missing_rank()
    {
        string folder = CollectiveThreads.NewFolder();
        var e = Assert.Throws<CollectiveException>(() => SharedMemoryCollectives.Join(new SharedMemoryOptions(folder, 0, 2) { Timeout = TimeSpan.FromMilliseconds(300) }));
        Assert.Equal(1, e.FailedRank);
        Assert.Contains("rank 1 (never joined)", e.Message, StringComparison.Ordinal);
        Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public void Given_a_used_rendezvous_folder_When_rank_0_joins_again_Then_it_is_refused_with_the_fix()
    {
        string folder = CollectiveThreads.NewFolder();
        File.WriteAllText(Path.Combine(folder, SharedMemoryOptions.FileName), "old");
        var e = Assert.Throws<CollectiveException>(() => SharedMemoryCollectives.Join(new SharedMemoryOptions(folder, 0, 1)));
        Assert.Contains("fresh folder", e.Message, StringComparison.Ordinal);
        Directory.Delete(folder, recursive: true);
    }

    [Theory]
    [InlineData(2, 2, "outside a world of 2")]
    [InlineData(0, 0, "at least 1")]
    public void Given_bad_options_When_joining_Then_the_error_names_the_field(int rank, int world, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => SharedMemoryCollectives.Join(new SharedMemoryOptions("/tmp/x", rank, world)));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    private static float[] Reduce(ICollectives col, Case c, float[] data, bool scatter)
    {
        if (c.Element == CollectiveElement.Float32)
        {
            if (!scatter)
            {
                float[] copy = (float[])data.Clone();
                col.AllReduce(copy, c.Operation);
                return copy;
            }
            float[] shard = new float[c.Count];
            col.ReduceScatter(data, shard, c.Operation);
            return shard;
        }
        ushort[] bits = Narrow(data);
        if (!scatter)
        {
            col.AllReduce(bits, c.Operation);
            return Widen(bits);
        }
        ushort[] part = new ushort[c.Count];
        col.ReduceScatter(bits, part, c.Operation);
        return Widen(part);
    }

    private static ushort[] GatherBf16(ICollectives col, ushort[] shard)
    {
        ushort[] whole = new ushort[shard.Length * col.WorldSize];
        col.AllGather(shard, whole);
        return whole;
    }

    /// <summary>The reduction written out: fp32 sums in rank order, the mean a division by the world, bf16 rounded once.</summary>
    private static float[] SerialReduction(Case c)
    {
        float[][] data = [.. Enumerable.Range(0, c.World).Select(r => c.Data(r, c.Count * c.World))];
        float[] result = new float[c.Count * c.World];
        for (int i = 0; i < result.Length; i++)
        {
            float acc = data[0][i];
            for (int r = 1; r < c.World; r++) acc += data[r][i];
            if (c.Operation == ReduceOperation.Mean) acc /= c.World;
            result[i] = c.Element == CollectiveElement.Float32 ? acc : BFloat16Bits.ToSingle(BFloat16Bits.FromSingle(acc));
        }
        return result;
    }

    private static ushort[] Narrow(float[] values) => [.. values.Select(BFloat16Bits.FromSingle)];

    private static float[] Widen(ushort[] bits) => [.. bits.Select(BFloat16Bits.ToSingle)];

    /// <summary>Bit-for-bit equality (NaN-safe, and -0 differs from +0).</summary>
    private static bool Same(float[] a, float[] b) =>
        a.Length == b.Length && a.Select(BitConverter.SingleToInt32Bits).SequenceEqual(b.Select(BitConverter.SingleToInt32Bits));
}

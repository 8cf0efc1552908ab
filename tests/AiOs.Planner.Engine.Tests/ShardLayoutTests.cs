using AiOs.Planner.Engine.Collectives;
using FsCheck;
using FsCheck.Fluent;

namespace AiOs.Planner.Engine.Tests;

public class ShardLayoutTests
{
    [Fact]
    public void Given_10_elements_over_4_ranks_When_sharded_Then_each_holds_3_and_the_last_holds_1_real_and_2_padding()
    {
        var layout = new ShardLayout(10, 4);
        Assert.Equal(3, layout.ShardElements);
        Assert.Equal(12, layout.PaddedElements);
        Assert.Equal(2, layout.Padding);
        Assert.Equal((9L, 1L), layout.RangeOf(3));
        Assert.Equal((3L, 3L), layout.RangeOf(1));
    }

    [Fact]
    public void Given_fewer_elements_than_ranks_When_sharded_Then_the_last_ranks_hold_only_padding()
    {
        var layout = new ShardLayout(2, 4);
        Assert.Equal(1, layout.ShardElements);
        Assert.Equal((2L, 0L), layout.RangeOf(2));
        Assert.Equal((3L, 0L), layout.RangeOf(3));
        float[] shard = [7f];
        layout.Shard<float>([1f, 2f], 3, shard);
        Assert.Equal(0f, shard[0]);
    }

    [Fact]
    public void Given_a_rank_outside_the_world_When_its_range_is_asked_Then_the_error_names_the_rank_and_the_world()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new ShardLayout(10, 2).RangeOf(2));
        Assert.Contains("Rank 2", e.Message, StringComparison.Ordinal);
        Assert.Contains("2 ranks", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_any_unit_and_world_When_sharded_and_the_shards_concatenated_Then_the_unit_comes_back_and_the_padding_is_zero() =>
        Prop.ForAll(Gen.Choose(0, 500).ToArbitrary(), Gen.Choose(1, 8).ToArbitrary(), (elements, world) =>
        {
            var layout = new ShardLayout(elements, world);
            float[] unit = [.. Enumerable.Range(1, elements).Select(i => (float)i)];
            float[] gathered = new float[layout.PaddedElements];
            for (int r = 0; r < world; r++)
                layout.Shard<float>(unit, r, gathered.AsSpan((int)(r * layout.ShardElements), (int)layout.ShardElements));
            float[] back = new float[elements];
            layout.Unshard<float>(gathered, back);
            return layout.PaddedElements % world == 0 && layout.Padding < world
                && back.SequenceEqual(unit) && gathered.Skip(elements).All(v => v == 0f);
        }).QuickCheckThrowOnFailure();
}

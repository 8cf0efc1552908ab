using AiOs.Planner.Engine.Optim;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// The chunked passes the start-up runs on every core (<see cref="Chunked"/>): a clear reaches every element across chunk
/// boundaries and nothing past its span, and a chunk's exception surfaces as itself, as one thread's loop would throw it.
/// </summary>
public class ChunkedTests
{
    [Fact]
    public void Given_a_span_of_several_chunks_and_a_tail_When_cleared_Then_every_element_is_zero_and_the_neighbours_are_kept()
    {
        int n = 2 * Chunked.Size + 77;
        var values = Enumerable.Repeat(7f, n + 2).ToArray();
        Chunked.Clear(values.AsSpan(1, n));
        Assert.Equal(7f, values[0]);
        Assert.Equal(7f, values[^1]);
        Assert.All(values.AsSpan(1, n).ToArray(), x => Assert.Equal(0f, x));
    }

    [Fact]
    public void Given_a_chunk_that_throws_When_run_in_parallel_Then_its_own_exception_surfaces_not_an_aggregate()
    {
        var e = Assert.Throws<ArgumentException>(() => Chunked.For(3 * Chunked.Size, (chunk, _, _) =>
        {
            if (chunk == 2) throw new ArgumentException("chunk 2 failed");
        }));
        Assert.Equal("chunk 2 failed", e.Message);
    }
}

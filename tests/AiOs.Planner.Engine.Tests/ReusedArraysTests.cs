using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Storage;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// The NVMe write-back's arrays are reused per exact size, so their number stays at the write-backs that ever ran at once,
/// however many threads take turns (the shared array pool kept one per returning thread: RSS grew every step).
/// </summary>
public sealed class ReusedArraysTests
{
    [Fact]
    public async Task Given_write_backs_taking_turns_on_many_threads_When_they_rent_and_return_Then_one_array_per_size_is_ever_made()
    {
        var arrays = new ReusedArrays();
        var made = new HashSet<byte[]>(ReferenceEqualityComparer.Instance);

        for (int step = 0; step < 20; step++)
            foreach (int bytes in new[] { 4096, 12_288 })
            {
                // A new thread each time, one at a time, as the steps' write-backs move between the pool's threads.
                byte[] got = await Task.Run(() => arrays.Rent(bytes));
                Assert.Equal(bytes, got.Length);
                made.Add(got);
                await Task.Run(() => arrays.Return(got));
            }

        Assert.Equal(2, made.Count);
        Assert.Equal(2, arrays.Free);
    }

    [Fact]
    public void Given_four_write_backs_of_one_size_at_once_When_they_return_Then_four_arrays_wait_and_later_rents_take_them()
    {
        var arrays = new ReusedArrays();

        byte[][] first = [.. Enumerable.Range(0, 4).Select(_ => arrays.Rent(1000))];
        Assert.Equal(4, first.Distinct(ReferenceEqualityComparer.Instance).Count());
        foreach (byte[] a in first) arrays.Return(a);
        byte[][] again = [.. Enumerable.Range(0, 4).Select(_ => arrays.Rent(1000))];

        Assert.All(again, a => Assert.Contains(a, first));
        Assert.Equal(0, arrays.Free);
    }
}

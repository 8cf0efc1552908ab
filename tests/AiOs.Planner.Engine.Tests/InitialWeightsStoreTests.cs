using AiOs.Planner.Engine.Model;
using AiOs.Planner.Models;

namespace AiOs.Planner.Engine.Tests;

/// <summary>Start-up: every unit made in parallel straight into its tier, the same values whatever the thread count.</summary>
public sealed class InitialWeightsStoreTests
{
    private static readonly ModelSpec Spec = ModelCatalog.Default.Load("tiny-gpt");

    [Theory]
    [InlineData(1, false)]
    [InlineData(4, false)]
    [InlineData(1, true)]
    [InlineData(4, true)]
    public void Given_any_thread_count_When_every_unit_is_stored_Then_each_unit_gets_exactly_its_seeded_values(int workers, bool inScratch)
    {
        int units = Spec.NumLayers + 1;
        float[][] expected = InitialWeights.Create(Spec, seed: 11);
        var scratch = expected.Select(e => new float[e.Length]).ToArray();
        var stored = new float[units][];
        using InitialWeights weights = InitialWeights.Open(Spec, 11, null);

        weights.StoreAll(units, (u, values) => stored[u] = values.ToArray(), inScratch ? u => scratch[u] : null, maxWorkers: workers);

        for (int u = 0; u < units; u++) Assert.Equal(expected[u], stored[u]);
        if (inScratch) for (int u = 0; u < units; u++) Assert.Equal(expected[u], scratch[u]);
    }

    [Fact]
    public void Given_a_store_that_fails_When_storing_Then_its_own_exception_comes_out_unwrapped()
    {
        using InitialWeights weights = InitialWeights.Open(Spec, 1, null);

        var e = Assert.Throws<IOException>(() => weights.StoreAll(Spec.NumLayers + 1, (u, _) =>
        {
            if (u == 1) throw new IOException("disk full");
        }));

        Assert.Equal("disk full", e.Message);
    }

    [Fact]
    public void Given_a_long_start_up_When_units_are_made_in_worker_arrays_Then_no_more_arrays_are_made_than_workers_plus_the_outer_block()
    {
        // Parallel.For retires its worker tasks and starts new ones (with fresh thread-local state) every ~100 ms or so; arrays
        // kept per task were made again by each new task, and the managed heap held them all until a full collection: the
        // host peak of start-up then depended on the collector's timing, not on the worker count the plan prices.
        var spec = Spec with { NumLayers = 1500 };
        using InitialWeights weights = InitialWeights.Open(spec, 3, null);

        weights.StoreAll(spec.NumLayers + 1, (_, _) => Thread.Sleep(2), maxWorkers: 8);

        Assert.InRange(weights.WorkerArraysMade, 1, 8 + 1);
    }
}

using AiOs.Planner.Engine.Model;
using AiOs.Planner.Models;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// The resident trainer's start-up (<see cref="InitialWeights.InOrderReusing"/>): the same values as one new array per unit,
/// made in at most the window's layer arrays and one outer-block array, so its host memory is bounded whatever the depth.
/// </summary>
public sealed class InitialWeightsReuseTests
{
    private static ModelSpec Deep(int layers) => ModelCatalog.Default.Load("tiny-gpt") with { NumLayers = layers };

    [Theory]
    [InlineData(12, 0L)]        // the window's floor: two units
    [InlineData(12, 1L << 40)]  // one unit per core
    [InlineData(1, 0L)]
    public void Given_seeded_units_When_lent_Then_every_unit_equals_its_own_array_bit_for_bit(int layers, long lookAhead)
    {
        ModelSpec spec = Deep(layers);
        using InitialWeights weights = InitialWeights.Open(spec, 7, null);
        int unit = 0;
        foreach (float[] values in weights.InOrderReusing(layers + 1, lookAhead))
        {
            Assert.Equal(weights.Unit(unit), values);
            unit++;
        }
        Assert.Equal(layers + 1, unit);
    }

    [Theory]
    [InlineData(40, 0L)]
    [InlineData(40, 1L << 40)]
    public void Given_a_deep_model_When_lent_Then_at_most_the_window_of_layer_arrays_and_one_outer_array_exist(int layers, long lookAhead)
    {
        ModelSpec spec = Deep(layers);
        using InitialWeights weights = InitialWeights.Open(spec, 3, null);
        var seen = new HashSet<float[]>(ReferenceEqualityComparer.Instance);
        foreach (float[] values in weights.InOrderReusing(layers + 1, lookAhead)) seen.Add(values);

        int window = InitialWeights.Window(spec, lookAhead, Environment.ProcessorCount);
        Assert.True(window < layers, "the case must have more layers than the window");
        // One new array per unit (InOrder) would be layers + 1 distinct arrays.
        Assert.InRange(seen.Count, 2, Math.Min(window, layers) + 1);
    }

    [Fact]
    public void Given_the_window_When_taken_Then_it_is_the_lookahead_over_the_largest_unit_between_two_and_the_cores()
    {
        ModelSpec spec = Deep(4);
        long largest = Math.Max(ParameterLayout.ForLayer(spec).Elements, ParameterLayout.ForOuter(spec).Elements) * sizeof(float);
        Assert.Equal(2, InitialWeights.Window(spec, 0, 16));
        Assert.Equal(5, InitialWeights.Window(spec, 5 * largest + 1, 16));
        Assert.Equal(16, InitialWeights.Window(spec, 1L << 40, 16));
    }
}

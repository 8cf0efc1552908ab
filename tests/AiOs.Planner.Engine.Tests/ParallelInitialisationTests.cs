using AiOs.Planner.Engine.Model;
using AiOs.Planner.Models;

namespace AiOs.Planner.Engine.Tests;

/// <summary>Initial weights made in pieces on every core equal the sequential stream bit for bit, whatever the piece size.</summary>
public sealed class ParallelInitialisationTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(4096)]
    public void Given_a_layer_When_initialised_in_pieces_Then_every_value_equals_the_one_piece_stream(int piece)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        foreach (ParameterLayout layout in new[] { ParameterLayout.ForLayer(spec), ParameterLayout.ForOuter(spec) })
        {
            float[] whole = new float[layout.Elements], pieces = new float[layout.Elements];
            layout.Initialise(whole, spec, seed: 42, unitIndex: 3, piece: int.MaxValue);
            layout.Initialise(pieces, spec, seed: 42, unitIndex: 3, piece: piece);

            Assert.Equal(whole, pieces);
        }
    }

    [Fact]
    public void Given_the_public_initialiser_When_called_Then_it_equals_a_sequential_splitmix_stream_of_two_draws_per_value()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        ParameterLayout layout = ParameterLayout.ForLayer(spec);
        float[] values = new float[layout.Elements];
        layout.Initialise(values, spec, 5, 0);

        // The first normal slice's first values, drawn one after another from the unit's seed as before the pieces existed.
        ParameterSlice first = layout.Slices.First(s => s.Init is not (ParameterInit.Zeros or ParameterInit.Ones));
        double std = first.Init == ParameterInit.ResidualNormal ? 0.02 / Math.Sqrt(2.0 * spec.NumLayers) : 0.02;
        var rng = new SplitMix64(unchecked(5UL * 0x9E3779B97F4A7C15UL + 0 + 1));
        for (int i = 0; i < 100; i++) Assert.Equal((float)(std * rng.NextGaussian()), values[first.Offset + i]);
    }
}

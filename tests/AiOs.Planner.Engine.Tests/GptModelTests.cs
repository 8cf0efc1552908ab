using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Models;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Tests;

public sealed class GptModelTests
{
    public GptModelTests() => TorchRuntime.EnsureReady();

    [Theory]
    [InlineData("tiny-gpt")]
    [InlineData("tiny-llama")]
    [InlineData("gpt2")]
    public void Given_AModel_When_LaidOut_Then_ElementCountsMatchTheCoreParameterCounts(string name)
    {
        ModelSpec spec = ModelCatalog.Default.Load(name);

        Assert.Equal(spec.LayerParameters, ParameterLayout.ForLayer(spec).Elements);
        Assert.Equal(spec.EmbeddingParameters + spec.HeadParameters, ParameterLayout.ForOuter(spec).Elements);
    }

    [Fact]
    public void Given_FlatParameters_When_TheFlatBufferIsWritten_Then_TheParameterViewsSeeIt()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        using var flat = new FlatParameters(ParameterLayout.ForLayer(spec), ScalarType.Float32, CPU);

        flat.CopyFrom(arange(flat.Layout.Elements, ScalarType.Float32));

        ParameterSlice k = flat.Layout.Find("attn.k.weight")!;
        Assert.Equal(k.Shape, flat["attn.k.weight"].shape);
        Assert.Equal(k.Offset + 1, flat["attn.k.weight"][0, 1].item<float>());
        Assert.True(flat["attn.k.weight"].requires_grad);
    }

    [Theory]
    [InlineData("tiny-gpt")]
    [InlineData("tiny-llama")]
    public void Given_AnInitialisedModel_When_AFutureTokenChanges_Then_EarlierPositionsAreUnchanged(string name)
    {
        ModelSpec spec = ModelCatalog.Default.Load(name);
        using var model = Build(spec, seed: 7);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        Tensor a = tensor(new long[] { 1, 2, 3, 4, 5, 6, 7, 8 }, [1, 8]);
        Tensor b = tensor(new long[] { 1, 2, 3, 4, 5, 6, 7, 99 }, [1, 8]);

        Tensor la = model.Outer.Logits(model.forward(a));
        Tensor lb = model.Outer.Logits(model.forward(b));

        Assert.Equal([1L, 8, spec.VocabSize], la.shape);
        Assert.True(la.narrow(1, 0, 7).allclose(lb.narrow(1, 0, 7)));
        Assert.False(la.narrow(1, 7, 1).allclose(lb.narrow(1, 7, 1)));
    }

    [Fact]
    public void Given_TheSameSeed_When_WeightsAreCreatedTwice_Then_TheyAreIdenticalAndADifferentSeedDiffers()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");

        float[][] a = InitialWeights.Create(spec, 1), b = InitialWeights.Create(spec, 1), c = InitialWeights.Create(spec, 2);

        Assert.Equal(a[0], b[0]);
        Assert.NotEqual(a[0], c[0]);
        Assert.NotEqual(a[0], a[1]);
    }

    [Fact]
    public void Given_AnInitialisedModel_When_LossIsComputed_Then_ItIsNearLogVocab()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        using var model = Build(spec, seed: 3);
        using var _ = no_grad();
        using var tokens = randint(0, 256, [2, 16], ScalarType.Int64);
        using var targets = randint(0, 256, [2, 16], ScalarType.Int64);

        using var loss = model.Loss(tokens, targets, 1);

        Assert.InRange(loss.item<float>(), Math.Log(256) - 0.3, Math.Log(256) + 0.3);
    }

    internal static GptModel Build(ModelSpec spec, long seed)
    {
        var model = new GptModel(spec, ScalarType.Float32, CPU);
        float[][] w = InitialWeights.Create(spec, seed);
        for (int u = 0; u < model.UnitCount; u++)
        {
            using var t = tensor(w[u]);
            model.Unit(u).CopyFrom(t);
        }
        return model;
    }
}

using AiOs.Planner.Engine.Checkpoints;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Models;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Tests;

/// <summary>Per-projection biases (Qwen2's q/k/v, Llama's attention_bias) and Mistral's sliding window in the engine.</summary>
public sealed class ProjectionBiasTests : IDisposable
{
    private static readonly ModelSpec Llama = ModelCatalog.Default.Load("tiny-llama");
    private static readonly ModelSpec Qwen = Llama with { Name = "tiny-qwen2", QkvBias = true };
    private readonly string _root = Directory.CreateTempSubdirectory("aios-bias-").FullName;

    public ProjectionBiasTests() => TorchRuntime.EnsureReady();

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static long LayoutTotal(ModelSpec spec) =>
        spec.NumLayers * ParameterLayout.ForLayer(spec).Elements + ParameterLayout.ForOuter(spec).Elements;

    [Theory]
    [InlineData(true, null, null)]
    [InlineData(true, true, null)]
    [InlineData(null, null, true)]
    public void Given_SomeProjectionsWithBiases_When_LaidOut_Then_TheLayoutHoldsExactlyCoresCount(bool? qkv, bool? o, bool? mlp)
    {
        ModelSpec spec = Llama with { QkvBias = qkv, AttentionOutputBias = o, MlpBias = mlp };

        Assert.Equal(spec.TotalParameters, LayoutTotal(spec));
        Assert.NotEqual(Llama.TotalParameters, spec.TotalParameters);
    }

    [Fact]
    public void Given_AQwen2ShapedModel_When_LaidOut_Then_QKAndVHaveBiasesAndOAndTheMlpHaveNone()
    {
        ParameterLayout layer = ParameterLayout.ForLayer(Qwen);

        foreach (string x in new[] { "q", "k", "v" }) Assert.NotNull(layer.Find($"attn.{x}.bias"));
        Assert.Null(layer.Find("attn.o.bias"));
        Assert.Null(layer.Find("mlp.gate.bias"));
        Assert.Equal([Qwen.KvDim], layer.Find("attn.k.bias")!.Shape);
    }

    [Fact]
    public void Given_Qwen2NamedTensorsWithQkvBiases_When_Loaded_Then_EveryParameterIncludingTheBiasesEqualsTheOriginalAndNoneIsUnused()
    {
        float[][] original = InitialWeights.Create(Qwen, 5);
        // Seeded initialisation zeroes biases; give them values so a bias that is not loaded shows.
        var rng = new Random(3);
        ParameterLayout layer = ParameterLayout.ForLayer(Qwen);
        for (int u = 0; u < Qwen.NumLayers; u++)
            foreach (ParameterSlice s in layer.Slices.Where(s => s.Name.EndsWith(".bias", StringComparison.Ordinal)))
                for (long i = 0; i < s.Elements; i++) original[u][s.Offset + i] = (float)rng.NextDouble();
        var tensors = HfLayout.Llama(Qwen, original);
        for (int u = 0; u < Qwen.NumLayers; u++)
            foreach (string x in new[] { "q", "k", "v" })
            {
                ParameterSlice s = layer.Find($"attn.{x}.bias")!;
                tensors.Add(($"model.layers.{u}.self_attn.{x}_proj.bias", s.Shape, original[u].AsSpan((int)s.Offset, (int)s.Elements).ToArray()));
            }
        string dir = Path.Combine(_root, "qwen");
        Directory.CreateDirectory(dir);
        SafeTensors.Write(Path.Combine(dir, PretrainedWeights.SingleFile), tensors);

        using var weights = PretrainedWeights.Open(dir, Qwen);

        Assert.Empty(weights.Warnings);
        for (int u = 0; u <= Qwen.NumLayers; u++) Assert.Equal(original[u], weights.ReadUnit(u));
    }

    [Fact]
    public void Given_AQkvBias_When_ALayerRuns_Then_TheBiasChangesTheOutput()
    {
        using var scope = NewDisposeScope();
        ParameterLayout layout = ParameterLayout.ForLayer(Qwen);
        float[] values = InitialWeights.Create(Qwen, 5)[0];
        using var parameters = new FlatParameters(layout, ScalarType.Float32, CPU);
        parameters.CopyFrom(tensor(values));
        using var layer = new DecoderLayer(Qwen, parameters);
        layer.eval();
        Tensor x = randn(new long[] { 1, 8, Qwen.HiddenSize }, generator: new TorchSharp.torch.Generator(1));
        Tensor before = layer.forward(x).clone();

        using (no_grad()) parameters["attn.q.bias"].fill_(0.5f);

        Assert.False(before.allclose(layer.forward(x), rtol: 0, atol: 1e-6));
    }

    [Fact]
    public void Given_ASlidingWindow_When_ALongerSequenceRuns_Then_ItIsRefusedNamingTheWindowAndTheFlag()
    {
        using var scope = NewDisposeScope();
        ModelSpec mistral = Llama with { Name = "tiny-mistral", SlidingWindow = 4 };
        using var parameters = new FlatParameters(ParameterLayout.ForLayer(mistral), ScalarType.Float32, CPU);
        using var layer = new DecoderLayer(mistral, parameters);

        var e = Assert.Throws<NotSupportedException>(() => layer.forward(zeros(1, 5, mistral.HiddenSize)));

        Assert.Contains("sliding window of 4 tokens", e.Message);
        Assert.Contains("--seq-len 4", e.Message);
        layer.forward(zeros(1, 4, mistral.HiddenSize));
    }
}

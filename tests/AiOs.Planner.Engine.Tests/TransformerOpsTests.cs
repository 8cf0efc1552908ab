using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Models;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Tests;

public sealed class TransformerOpsTests
{
    private static readonly ModelSpec Llama = ModelCatalog.Default.Load("tiny-llama");

    /// <summary>Llama 3.1's published rope_scaling (meta-llama/Llama-3.1-8B config.json).</summary>
    private static readonly RopeScaling Llama31 = new()
    {
        RopeType = RopeScalingKind.Llama3,
        Factor = 8,
        LowFreqFactor = 1,
        HighFreqFactor = 4,
        OriginalMaxPositionEmbeddings = 8192,
    };

    public TransformerOpsTests() => TorchRuntime.EnsureReady();

    [Fact]
    public void Given_SomeValues_When_TheTanhGeluIsApplied_Then_ItEqualsTheClosedFormulaAndDiffersFromTheExactGelu()
    {
        double[] xs = [-3, -1, -0.5, 0, 0.5, 1, 2, 3];
        using var scope = NewDisposeScope();
        Tensor x = tensor(xs, ScalarType.Float64);

        double[] tanh = TransformerOps.Gelu(x, ActivationKind.GeluTanh).data<double>().ToArray();
        double[] exact = TransformerOps.Gelu(x, ActivationKind.Gelu).data<double>().ToArray();

        for (int i = 0; i < xs.Length; i++)
        {
            double v = xs[i];
            double expected = 0.5 * v * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
            Assert.Equal(expected, tanh[i], 12);
        }
        // At x = 1 the approximation is 0.841192 and the exact value Φ(1) = 0.841345.
        Assert.Equal(0.8413447460685429, exact[5], 9);
        Assert.True(Math.Abs(exact[5] - tanh[5]) > 1e-4);
    }

    [Fact]
    public void Given_RopeTheta500000_When_AKeyIsRotated_Then_ThePairTurnsByTheHandComputedAngleUnlikeBase10000()
    {
        const int position = 5, pair = 3, d = 16;
        using var scope = NewDisposeScope();
        // One head whose only non-zero coordinate is the first half of pair 3: rotation leaves (cos, sin) in the pair.
        Tensor x = zeros(1, 1, 8, d);
        x[.., .., .., pair] = tensor(1f);

        Tensor rotated = TransformerOps.Rotary(x, Llama with { RopeTheta = 500000 });
        Tensor rotated10K = TransformerOps.Rotary(x, Llama);

        double angle = position / Math.Pow(500000, 2.0 * pair / d);
        Assert.Equal(Math.Cos(angle), rotated[0, 0, position, pair].item<float>(), 5);
        Assert.Equal(Math.Sin(angle), rotated[0, 0, position, pair + d / 2].item<float>(), 5);
        double angle10K = position / Math.Pow(10000, 2.0 * pair / d);
        Assert.Equal(Math.Sin(angle10K), rotated10K[0, 0, position, pair + d / 2].item<float>(), 5);
        Assert.True(Math.Abs(Math.Sin(angle) - Math.Sin(angle10K)) > 0.01);
    }

    [Fact]
    public void Given_RotaryTablesMadeInsideADisposedScope_When_AskedAgain_Then_TheSameLiveTablesComeBackAndOtherConstantsGetTheirOwn()
    {
        ModelSpec scaled = Llama with { RopeTheta = 500000, RopeScaling = Llama31 };
        (Tensor Cos, Tensor Sin) first;
        using (NewDisposeScope()) first = TransformerOps.RotaryTables(scaled, 12, 16, CPU, ScalarType.Float32);

        var again = TransformerOps.RotaryTables(scaled, 12, 16, CPU, ScalarType.Float32);
        var unscaled = TransformerOps.RotaryTables(scaled with { RopeScaling = null }, 12, 16, CPU, ScalarType.Float32);

        Assert.Same(first.Cos, again.Cos);
        Assert.False(first.Cos.IsInvalid);
        Assert.Equal(new long[] { 12, 16 }, first.Sin.shape);
        // Position 11's lowest-frequency pair: Llama 3.1's scaling divides its frequency by 8, so the angles differ.
        Assert.NotEqual(first.Sin[11, 7].item<float>(), unscaled.Sin[11, 7].item<float>());
        using var scope = NewDisposeScope();
        Tensor angles = outer(arange(0, 12, 1, ScalarType.Float32), TransformerOps.InverseFrequencies(scaled, 16, CPU));
        Assert.True(first.Cos.narrow(-1, 0, 8).eq(angles.cos()).all().item<bool>());
    }

    [Fact]
    public void Given_Llama31Scaling_When_InverseFrequenciesAreComputed_Then_HighMiddleAndLowFrequenciesFollowThePublishedFormula()
    {
        const int d = 16;
        ModelSpec spec = Llama with { RopeTheta = 500000, RopeScaling = Llama31 };
        using var scope = NewDisposeScope();

        float[] scaled = TransformerOps.InverseFrequencies(spec, d, CPU).data<float>().ToArray();
        float[] plain = TransformerOps.InverseFrequencies(spec with { RopeScaling = null }, d, CPU).data<float>().ToArray();

        // Pair i has inverse frequency θ^(−2i/D) and wavelength 2π/f; L = 8192 splits them at L/4 = 2048 and L/1 = 8192.
        double Inv(int i) => Math.Pow(500000, -2.0 * i / d);
        double Wavelength(int i) => 2 * Math.PI / Inv(i);
        Assert.InRange(Wavelength(0), 0, 2048);        // high frequency: kept
        Assert.InRange(Wavelength(4), 2048, 8192);     // middle: blended
        Assert.InRange(Wavelength(7), 8192, 1e12);     // low frequency: divided by the factor
        double smooth = (8192 / Wavelength(4) - 1) / (4 - 1);
        double[] expected = [Inv(0), (1 - smooth) * Inv(4) / 8 + smooth * Inv(4), Inv(7) / 8];
        int[] pairs = [0, 4, 7];
        for (int k = 0; k < pairs.Length; k++)
            Assert.Equal(1.0, scaled[pairs[k]] / expected[k], 5);
        Assert.Equal(Inv(4), plain[4], 8);
        Assert.InRange(scaled[4], Inv(4) / 8 * 1.01, Inv(4) * 0.99);
    }

    private static Tensor Logits(ModelSpec spec, Tensor tokens)
    {
        using var model = GptModelTests.Build(spec, seed: 7);
        using var _ = no_grad();
        return model.Outer.Logits(model.forward(tokens));
    }

    [Fact]
    public void Given_TheSameWeights_When_TheGeluVariantOrNormEpsChanges_Then_TheModelComputesSomethingElse()
    {
        ModelSpec gpt = ModelCatalog.Default.Load("tiny-gpt");
        using var scope = NewDisposeScope();
        Tensor tokens = tensor(new long[] { 1, 2, 3, 4, 5, 6, 7, 8 }, [1, 8]);

        Tensor exact = Logits(gpt, tokens);

        Assert.True(exact.allclose(Logits(gpt with { Activation = ActivationKind.Gelu, NormEps = 1e-5 }, tokens), rtol: 0, atol: 0));
        Assert.False(exact.allclose(Logits(gpt with { Activation = ActivationKind.GeluTanh }, tokens), rtol: 0, atol: 1e-6));
        Assert.False(exact.allclose(Logits(gpt with { NormEps = 1e-1 }, tokens), rtol: 0, atol: 1e-6));
        Assert.False(Logits(Llama, tokens).allclose(Logits(Llama with { NormEps = 1e-1 }, tokens), rtol: 0, atol: 1e-6));
    }

    [Fact]
    public void Given_TheSameWeights_When_RopeThetaOrScalingChanges_Then_OnlyPositionsAfterTheFirstChange()
    {
        using var scope = NewDisposeScope();
        Tensor tokens = tensor(new long[] { 1, 2, 3, 4, 5, 6, 7, 8 }, [1, 8]);
        Tensor base10K = Logits(Llama, tokens);

        foreach (ModelSpec other in new[] { Llama with { RopeTheta = 500000 }, Llama with { RopeScaling = Llama31 with { OriginalMaxPositionEmbeddings = 16 } } })
        {
            Tensor changed = Logits(other, tokens);
            // Position 0 is rotated by angle 0 whatever the frequencies; later positions see the new angles.
            Assert.True(base10K.narrow(1, 0, 1).allclose(changed.narrow(1, 0, 1), rtol: 0, atol: 1e-6));
            Assert.False(base10K.narrow(1, 1, 7).allclose(changed.narrow(1, 1, 7), rtol: 0, atol: 1e-6));
        }
    }
}

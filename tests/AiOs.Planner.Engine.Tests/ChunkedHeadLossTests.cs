using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// The fused, chunked head and loss (<see cref="ChunkedHeadLoss"/>) against the unfused one (full logits, upcast,
/// cross_entropy): the same loss and the same gradient for every parameter, tied (tiny-gpt) and untied (tiny-llama).
/// </summary>
public sealed class ChunkedHeadLossTests
{
    private const int Batch = 2, Seq = 13; // 26 positions: chunks of 8 leave a ragged last chunk of 2

    public ChunkedHeadLossTests() => TorchRuntime.EnsureReady();

    /// <summary>
    /// Tolerances, relative to each tensor's largest magnitude. fp32: only the order of fp32 sums differs (per-chunk
    /// products added into the weight's gradient, the loss summed by chunk). bf16: the weight's gradient is rounded to
    /// bf16 per chunk before its fp32 sum (unfused: once), ~2⁻⁸ relative per rounding, and it reaches every layer.
    /// fp16: the fused path casts the gradient before the 1/(tokens·divisor) factor, the unfused one after the loss
    /// scale, so roundings sit in different places (2⁻¹¹ relative each), and the weight's gradient is summed in fp32.
    /// </summary>
    [Theory]
    [InlineData("tiny-gpt", ScalarType.Float32, 8, 1e-5)]
    [InlineData("tiny-llama", ScalarType.Float32, 8, 1e-5)]
    [InlineData("tiny-gpt", ScalarType.Float32, 5, 1e-5)]
    [InlineData("tiny-llama", ScalarType.Float32, 1000, 1e-5)]
    [InlineData("tiny-gpt", ScalarType.BFloat16, 8, 3e-2)]
    [InlineData("tiny-llama", ScalarType.BFloat16, 8, 3e-2)]
    [InlineData("tiny-gpt", ScalarType.Float16, 8, 1e-2)]
    [InlineData("tiny-llama", ScalarType.Float16, 8, 1e-2)]
    public void Given_ChunksWithARaggedLastOne_When_TheLossIsBackPropagated_Then_LossAndEveryGradientMatchTheUnfusedHead(
        string name, ScalarType dtype, long chunk, double tolerance)
    {
        ModelSpec spec = ModelCatalog.Default.Load(name);
        using var model = Build(spec, dtype, seed: 11);
        using var tokens = Tokens(spec, seed: 5);
        using var targets = Tokens(spec, seed: 6);
        double scale = dtype == ScalarType.Float16 ? 1024 : 1; // as the trainers back-propagate loss · the fp16 loss scale

        var (unfusedLoss, unfused) = Run(model, m => m.Outer.UnchunkedLoss(m.Hidden(tokens, null), targets, 4), scale);
        model.Outer.LossChunkTokens = chunk;
        var (fusedLoss, fused) = Run(model, m => m.Outer.Loss(m.Hidden(tokens, null), targets, 4), scale);

        Assert.Equal(unfusedLoss, fusedLoss, dtype == ScalarType.Float32 ? 1e-5 * unfusedLoss : 2e-3 * unfusedLoss);
        Assert.Equal(unfused.Keys, fused.Keys);
        AssertAllClose(unfused, fused, tolerance);
    }

    [Theory]
    [InlineData("tiny-gpt")]
    [InlineData("tiny-llama")]
    public void Given_IgnoredTargets_When_TheLossIsBackPropagated_Then_TheyCountForNothingAsInCrossEntropy(string name)
    {
        ModelSpec spec = ModelCatalog.Default.Load(name);
        using var model = Build(spec, ScalarType.Float32, seed: 2);
        using var tokens = Tokens(spec, seed: 3);
        using var targets = Tokens(spec, seed: 4);
        targets[0, 3] = tensor(ChunkedHeadLoss.IgnoreIndex);
        targets[1, TensorIndex.Slice(5, 9)] = tensor(ChunkedHeadLoss.IgnoreIndex);

        var (unfusedLoss, unfused) = Run(model, m => m.Outer.UnchunkedLoss(m.Hidden(tokens, null), targets, 1), 1);
        model.Outer.LossChunkTokens = 4;
        var (fusedLoss, fused) = Run(model, m => m.Outer.Loss(m.Hidden(tokens, null), targets, 1), 1);

        Assert.Equal(unfusedLoss, fusedLoss, 1e-5 * unfusedLoss);
        AssertAllClose(unfused, fused, 1e-5);
    }

    /// <summary>
    /// A vocabulary that is not a multiple of 64 (gpt2's 50,257 is not): the fused head pads its matmuls to 64 rows
    /// (<see cref="EngineHeadLoss.PaddedVocab"/>) and must still give the unpadded head's loss and gradients, the head
    /// weight's gradient with the vocabulary's shape; with ignored targets in a ragged last chunk.
    /// </summary>
    [Theory]
    [InlineData("tiny-gpt", ScalarType.Float32, 1e-5)]
    [InlineData("tiny-llama", ScalarType.Float32, 1e-5)]
    [InlineData("tiny-gpt", ScalarType.BFloat16, 3e-2)]
    [InlineData("tiny-llama", ScalarType.BFloat16, 3e-2)]
    public void Given_AVocabularyOffTheMultipleOf64_When_TheLossIsBackPropagated_Then_ThePaddedMatmulsMatchTheUnfusedHead(string name, ScalarType dtype, double tolerance)
    {
        ModelSpec spec = ModelCatalog.Default.Load(name) with { VocabSize = 203 };
        Assert.NotEqual(spec.VocabSize, EngineHeadLoss.PaddedVocab(spec.VocabSize)); // the padded path runs
        using var model = Build(spec, dtype, seed: 21);
        using var tokens = Tokens(spec, seed: 8);
        using var targets = Tokens(spec, seed: 9);
        targets[1, 4] = tensor(ChunkedHeadLoss.IgnoreIndex);

        var (unfusedLoss, unfused) = Run(model, m => m.Outer.UnchunkedLoss(m.Hidden(tokens, null), targets, 2), 1);
        model.Outer.LossChunkTokens = 8;
        var (fusedLoss, fused) = Run(model, m => m.Outer.Loss(m.Hidden(tokens, null), targets, 2), 1);

        Assert.Equal(unfusedLoss, fusedLoss, dtype == ScalarType.Float32 ? 1e-5 * unfusedLoss : 2e-3 * unfusedLoss);
        Assert.Equal(unfused.Keys, fused.Keys);
        AssertAllClose(unfused, fused, tolerance);
    }

    /// <summary>Too few tokens to fuse and a vocabulary off the multiple of 64: the unfused head pads its matmul the same way and gives the reference's loss and gradients.</summary>
    [Theory]
    [InlineData("tiny-gpt", ScalarType.Float32, 1e-5)]
    [InlineData("tiny-llama", ScalarType.BFloat16, 3e-2)]
    public void Given_AnUnfusedHeadOffTheMultipleOf64_When_TheLossIsBackPropagated_Then_ItMatchesTheUnpaddedReference(string name, ScalarType dtype, double tolerance)
    {
        ModelSpec spec = ModelCatalog.Default.Load(name) with { VocabSize = 203 };
        var precision = dtype == ScalarType.Float32 ? Precision.Fp32 : Precision.Bf16;
        Assert.False(EngineHeadLoss.FusingSavesBytes(Batch * Seq, spec.VocabSize, spec.HiddenSize, precision)); // Loss takes the unfused branch
        using var model = Build(spec, dtype, seed: 23);
        using var tokens = Tokens(spec, seed: 10);
        using var targets = Tokens(spec, seed: 12);

        var (referenceLoss, reference) = Run(model, m => m.Outer.UnchunkedLoss(m.Hidden(tokens, null), targets, 2), 1);
        var (loss, padded) = Run(model, m => m.Outer.Loss(m.Hidden(tokens, null), targets, 2), 1);

        Assert.Equal(referenceLoss, loss, dtype == ScalarType.Float32 ? 1e-5 * referenceLoss : 2e-3 * referenceLoss);
        Assert.Equal(reference.Keys, padded.Keys);
        AssertAllClose(reference, padded, tolerance);
    }

    [Fact]
    public void Given_NoGrad_When_TheLossIsComputedInChunks_Then_ItEqualsTheUnfusedLossAndKeepsNoGraph()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-llama");
        using var model = Build(spec, ScalarType.Float32, seed: 9);
        using var tokens = Tokens(spec, seed: 1);
        using var targets = Tokens(spec, seed: 2);
        model.Outer.LossChunkTokens = 3;
        using var _ = no_grad();

        using Tensor hidden = model.Hidden(tokens, null);
        using Tensor fused = model.Outer.Loss(hidden, targets, 2);
        using Tensor unfused = model.Outer.UnchunkedLoss(hidden, targets, 2);

        Assert.False(fused.requires_grad);
        Assert.Equal(unfused.item<float>(), fused.item<float>(), 1e-5 * unfused.item<float>());
    }

    [Theory]
    [InlineData(256, 262_144)]    // tiny vocabularies: one chunk holds any micro-batch
    [InlineData(50_257, 1_280)]   // gpt2: 1,335 fit 256 MiB, rounded down to whole 128-token tiles
    [InlineData(128_256, 512)]    // Llama 3
    [InlineData(4_000_000, 128)]  // never below one tile
    public void Given_AVocabulary_When_TheChunkIsSized_Then_ItsFp32LogitsFitTheBudgetInWholeTiles(long vocab, long tokens)
    {
        long chunk = EngineHeadLoss.ChunkTokens(vocab);

        Assert.Equal(tokens, chunk);
        Assert.Equal(0, chunk % EngineHeadLoss.TokenMultiple);
        Assert.True(chunk == EngineHeadLoss.TokenMultiple || chunk * vocab * 4 <= EngineHeadLoss.ChunkLogitsBytes);
    }

    private static (double Loss, Dictionary<string, Tensor> Gradients) Run(GptModel model, Func<GptModel, Tensor> loss, double scale)
    {
        for (int u = 0; u < model.UnitCount; u++) model.Unit(u).ClearGradients();
        double value;
        using (var scope = NewDisposeScope())
        {
            Tensor l = loss(model);
            value = l.item<float>();
            l.mul(scale).backward();
        }
        var grads = new Dictionary<string, Tensor>();
        // Per parameter of every unit, read through the unit (q, k and v's gradients arrive as one through their joint view).
        for (int u = 0; u < model.UnitCount; u++)
            foreach (var (name, _) in model.Unit(u).Named())
                grads[$"{u}.{name}"] = (model.Unit(u).Gradient(name) ?? throw new InvalidOperationException($"unit {u}'s {name} got no gradient.")).to(ScalarType.Float64).div(scale).DetachFromDisposeScope();
        return (value, grads);
    }

    /// <summary>
    /// Each gradient within <paramref name="tolerance"/> of max(its largest magnitude, 10⁻³ × the model's largest): the
    /// key projection's bias has a zero gradient in exact arithmetic (softmax ignores a shift common to a query's
    /// scores), so its computed value is rounding noise that only an absolute floor can compare.
    /// </summary>
    private static void AssertAllClose(Dictionary<string, Tensor> expected, Dictionary<string, Tensor> actual, double tolerance)
    {
        double largest = expected.Values.Max(t => t.abs().max().item<double>());
        Assert.True(largest > 0, "Every reference gradient is zero, so the comparison cannot fail.");
        foreach (var (name, e) in expected)
        {
            double magnitude = Math.Max(e.abs().max().item<double>(), 1e-3 * largest), error = (e - actual[name]).abs().max().item<double>();
            Assert.True(error <= tolerance * magnitude, $"{name}: max |fused − unfused| = {error:G4} against {magnitude:G4} (tolerance {tolerance:G2} relative).");
        }
    }

    private static Tensor Tokens(ModelSpec spec, long seed)
    {
        using var g = new Generator((ulong)seed);
        return randint(0, spec.VocabSize, [Batch, Seq], ScalarType.Int64, generator: g);
    }

    private static GptModel Build(ModelSpec spec, ScalarType dtype, long seed)
    {
        var model = new GptModel(spec, dtype, CPU);
        float[][] w = InitialWeights.Create(spec, seed);
        for (int u = 0; u < model.UnitCount; u++)
        {
            using var t = tensor(w[u]);
            model.Unit(u).CopyFrom(t);
        }
        return model;
    }
}

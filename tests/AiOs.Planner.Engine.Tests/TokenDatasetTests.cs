using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Native;

namespace AiOs.Planner.Engine.Tests;

public sealed class TokenDatasetTests
{
    public TokenDatasetTests() => TorchRuntime.EnsureReady();

    [Fact]
    public void Given_TheBundledText_When_SampledTwiceWithTheSameCounters_Then_TheBatchesAreEqualAndTargetsAreShiftedInputs()
    {
        TokenDataset data = TokenDataset.Load(BundledText.DefaultPath);

        using TokenBatch a = data.Sample(seed: 1, step: 3, micro: 1, batch: 2, seqLen: 16);
        using TokenBatch b = data.Sample(seed: 1, step: 3, micro: 1, batch: 2, seqLen: 16);
        using TokenBatch c = data.Sample(seed: 1, step: 4, micro: 1, batch: 2, seqLen: 16);

        long[] ai = a.Inputs.data<long>().ToArray(), at = a.Targets.data<long>().ToArray();
        Assert.Equal(ai, b.Inputs.data<long>().ToArray());
        Assert.NotEqual(ai, c.Inputs.data<long>().ToArray());
        Assert.Equal(ai.Skip(1).Take(15), at.Take(15));
        Assert.All(ai, t => Assert.InRange(t, 0, 255));
        Assert.True(data.Length > 4000);
    }

    [Fact]
    public void Given_AFileShorterThanTheSequence_When_Sampled_Then_TheErrorSaysHowManyBytesAreNeeded()
    {
        var data = new TokenDataset([1, 2, 3], 256, "tiny");

        var e = Assert.Throws<InvalidOperationException>(() => data.Sample(1, 0, 0, 1, 8));

        Assert.Contains("at least 9 tokens", e.Message);
    }

    [Fact]
    public void Given_TheBundledText_When_TokenisedAsGpt2_Then_IdsFitTheGpt2VocabularyAndAreFewerThanBytes()
    {
        TokenDataset bytes = TokenDataset.Load(BundledText.DefaultPath);
        TokenDataset bpe = TokenDataset.Load(BundledText.DefaultPath, Tokenization.Gpt2);

        using TokenBatch batch = bpe.Sample(seed: 1, step: 0, micro: 0, batch: 4, seqLen: 64);

        Assert.Equal(50257, bpe.VocabSize);
        Assert.InRange(bpe.Length, bytes.Length / 6, bytes.Length / 2);
        Assert.All(batch.Inputs.data<long>().ToArray(), t => Assert.InRange(t, 0, 50256));
        Assert.Contains(batch.Inputs.data<long>().ToArray(), t => t >= 256);
    }
}

using AiOs.Planner.Memory;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The unfused head's peak is its backward (OuterBlock's unchunked loss): nll_loss's gradient and log-softmax's gradient
/// beside the fp32 log-softmax both keep, 12 bytes per vocabulary entry and token, more than the forward's logits, fp32 copy
/// and log-softmax, except in fp32 with the padded matmul (its narrowed logits copied for log-softmax).
/// </summary>
public class UnfusedHeadBackwardTests
{
    private const long Gpt2Vocab = 50_257, Gpt2Padded = 50_304;

    [Theory]
    [InlineData(Precision.Bf16, 12 * Gpt2Vocab)]
    [InlineData(Precision.Fp16, 12 * Gpt2Vocab)]
    [InlineData(Precision.Fp32, 4 * Gpt2Padded + 8 * Gpt2Vocab)]
    public void Given_gpt2s_vocabulary_When_the_unfused_loss_is_priced_Then_each_token_costs_the_larger_of_its_backward_and_forward(Precision precision, long expected)
    {
        Assert.Equal(expected, EngineHeadLoss.UnfusedLogitsBytesPerToken(Gpt2Vocab, precision));
    }

    [Fact]
    public void Given_a_vocabulary_that_needs_no_padding_in_fp32_When_priced_Then_the_backward_sets_it_at_12_bytes()
    {
        // Llama 3's 128,256 is a multiple of 64: no narrowed copy, so the forward holds 8 bytes and the backward 12.
        Assert.Equal(12 * 128_256L, EngineHeadLoss.UnfusedLogitsBytesPerToken(128_256, Precision.Fp32));
    }

    [Fact]
    public void Given_gpt2_at_8192_tokens_in_bf16_When_priced_Then_the_backward_adds_0_77_GiB_to_the_forward_figure()
    {
        long tokens = 8 * 1024;
        Bytes forward = new(tokens * (6L * 768 + 2 * Gpt2Padded + 8 * Gpt2Vocab) + 2L * Gpt2Padded * 768);

        Bytes unfused = EngineHeadLoss.UnfusedBytes(tokens, Gpt2Vocab, 768, Precision.Bf16);

        Assert.Equal(new Bytes(tokens * (4 * Gpt2Vocab - 2 * Gpt2Padded)), unfused - forward);
        Assert.InRange((unfused - forward).GiB, 0.76, 0.77);
    }

    [Fact]
    public void Given_tiny_gpt_at_64_fp32_tokens_When_the_byte_rule_decides_Then_it_keeps_the_unfused_head_it_ran_before_the_backward_was_priced()
    {
        // Fused 196,608 bytes; the unfused forward 180,224, its backward 245,760: the rule compares with the forward.
        Assert.True(EngineHeadLoss.FusedBytes(64, 256, 64, Precision.Fp32) < EngineHeadLoss.UnfusedBytes(64, 256, 64, Precision.Fp32));
        Assert.False(EngineHeadLoss.FusingSavesBytes(64, 256, 64, Precision.Fp32));
    }
}

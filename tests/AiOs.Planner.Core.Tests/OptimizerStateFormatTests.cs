using AiOs.Planner.Optim;

namespace AiOs.Planner.Core.Tests;

/// <summary>The bytes each optimizer-state format stores per parameter, as the planner will count them.</summary>
public class OptimizerStateFormatTests
{
    [Fact]
    public void Given_fp32_Then_master_and_both_moments_take_12_bytes_per_parameter()
    {
        Assert.Equal(12_000L, OptimizerStateFormat.Fp32.StateBytes(1000).Value);
        Assert.Equal(12.0, OptimizerStateFormat.Fp32.BytesPerParameter());
    }

    [Theory]
    [InlineData(1, 4 + 2 * (1 + 4))]
    [InlineData(2048, 4 * 2048 + 2 * (2048 + 4))]
    [InlineData(2049, 4 * 2049 + 2 * (2049 + 8))]
    public void Given_8bit_Then_master_is_4_bytes_each_moment_1_plus_a_scale_per_block(long elements, long expected) =>
        Assert.Equal(expected, OptimizerStateFormat.EightBit.StateBytes(elements).Value);

    [Fact]
    public void Given_a_large_tensor_Then_8bit_state_is_about_half_of_fp32s()
    {
        double ratio = OptimizerStateFormat.EightBit.StateBytes(1_500_000_000) / OptimizerStateFormat.Fp32.StateBytes(1_500_000_000);
        Assert.InRange(ratio, 0.5, 0.501);
        Assert.Equal(6 + 8.0 / 2048, OptimizerStateFormat.EightBit.BytesPerParameter());
    }

    [Theory]
    [InlineData("fp32", OptimizerStateFormat.Fp32)]
    [InlineData("8BIT", OptimizerStateFormat.EightBit)]
    public void Given_a_spelling_Then_it_parses_and_names_back(string text, OptimizerStateFormat format)
    {
        Assert.Equal(format, OptimizerStateFormats.Parse(text));
        Assert.Equal(text.ToLowerInvariant(), format.Name());
    }

    [Theory]
    [InlineData("int8")]
    [InlineData("")]
    [InlineData(null)]
    public void Given_an_unknown_spelling_Then_it_does_not_parse(string? text) => Assert.Null(OptimizerStateFormats.Parse(text));
}

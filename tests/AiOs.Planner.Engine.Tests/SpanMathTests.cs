using System.Runtime.InteropServices;
using AiOs.Planner.Engine.Optim;
using FsCheck;
using FsCheck.Fluent;

namespace AiOs.Planner.Engine.Tests;

/// <summary>The bf16 helpers the bf16 gradient store reads through: exactly the fp32 path over the widened values.</summary>
public sealed class SpanMathTests
{
    private static float[] Widened(ushort[] bf16) => bf16.Select(b => BitConverter.UInt32BitsToSingle((uint)b << 16)).ToArray();

    [Fact]
    public void Given_any_bf16_bits_When_widened_Then_each_is_the_bits_shifted_up_by_16()
    {
        Prop.ForAll(Gen.ArrayOf(ArbMap.Default.GeneratorFor<ushort>()).ToArbitrary(), bits =>
        {
            var wide = new float[bits.Length];
            PrecisionCast.WidenBf16(bits, wide);
            Assert.Equal(Widened(bits).Select(BitConverter.SingleToInt32Bits), wide.Select(BitConverter.SingleToInt32Bits));
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(200));
    }

    [Fact]
    public void Given_any_bf16_bits_When_summed_squared_Then_the_result_is_that_of_the_widened_fp32_values_to_the_bit()
    {
        // Lengths around the vector width exercise an odd count of float vectors and the scalar tail.
        Prop.ForAll(Gen.ArrayOf(ArbMap.Default.GeneratorFor<ushort>()).ToArbitrary(), bits =>
            Assert.Equal(BitConverter.DoubleToInt64Bits(SpanMath.SumOfSquares(Widened(bits))), BitConverter.DoubleToInt64Bits(SpanMath.SumOfSquaresBf16(bits))))
            .Check(Config.QuickThrowOnFailure.WithMaxTest(300));
    }

    [Theory]
    [InlineData(3 * (1 << 20) / 2 + 13)]
    [InlineData(2 * (1 << 20))]
    public void Given_bf16_values_over_several_chunks_When_summed_squared_or_widened_Then_they_match_the_fp32_path_to_the_bit(int length)
    {
        var random = new Random(length);
        var values = new float[length];
        for (int i = 0; i < length; i++) values[i] = (float)((random.NextDouble() - 0.5) * 8);
        var bits = new byte[2 * length];
        PrecisionCast.ToBf16(values, bits);
        ushort[] bf16 = MemoryMarshal.Cast<byte, ushort>(bits).ToArray();
        var wide = new float[length];

        PrecisionCast.WidenBf16(bf16, wide);

        Assert.Equal(Widened(bf16), wide);
        Assert.Equal(BitConverter.DoubleToInt64Bits(SpanMath.SumOfSquares(wide)), BitConverter.DoubleToInt64Bits(SpanMath.SumOfSquaresBf16(bf16)));
    }
}

using FsCheck;
using FsCheck.Fluent;
using AiOs.Planner.Optim;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// <see cref="MasterSplit"/>: every fp32 bit pattern splits into a bf16 high half (ties away from zero) and a 16-bit remainder
/// that join back to the same bits (NaN: to a NaN), and the high half is PyTorch's round-to-nearest-even except at exact ties.
/// </summary>
public class MasterSplitTests
{
    /// <summary>Bit patterns of every class: any, ±0, subnormals, exact ties, halves just below and above a tie, the largest finite values, ±∞, NaNs (quiet, signalling, with the low half near 0x8000 and 0xFFFF).</summary>
    private static readonly Gen<uint> Bits =
        from hi in Gen.Choose(0, 0xFFFF)
        from kind in Gen.Choose(0, 9)
        from low in Gen.Choose(0, 0xFFFF)
        select kind switch
        {
            0 => ((uint)hi << 16) | 0x8000u,                    // exact tie
            1 => ((uint)hi << 16) | 0x7FFFu,                    // just below a tie
            2 => ((uint)hi << 16) | 0x8001u,                    // just above
            3 => (uint)low | (hi % 2 == 0 ? 0u : 0x80000000u),  // ±0 and subnormals
            4 => (0x7F7Fu << 16) | (uint)low | (hi % 2 == 0 ? 0u : 0x80000000u), // the largest finite values (rounding may carry to ∞)
            5 => (0x7F80u << 16) | (hi % 2 == 0 ? 0u : 0x80000000u),             // ±∞
            6 => (0x7F80u << 16) | (uint)Math.Max(1, low) | (hi % 2 == 0 ? 0u : 0x80000000u), // NaN, exponent all ones, low mantissa only
            7 => 0x7FFF0000u | (uint)low | (hi % 2 == 0 ? 0u : 0x80000000u),    // NaN with a full mantissa (the carry would reach the sign)
            _ => ((uint)hi << 16) | (uint)low,                   // any
        };

    /// <summary>PyTorch's fp32 → bf16 (round to nearest even, NaN → 0x7FC0), as the engine's <c>PrecisionCast.ToBf16</c>.</summary>
    private static ushort NearestEven(uint b) =>
        float.IsNaN(BitConverter.UInt32BitsToSingle(b)) ? (ushort)0x7FC0 : (ushort)((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);

    [Fact]
    public void Given_any_fp32_bit_pattern_When_split_and_joined_Then_the_bits_come_back_and_the_high_half_rounds_as_nearest_even_but_at_ties()
    {
        Prop.ForAll(Bits.ToArbitrary(), b =>
        {
            float x = BitConverter.UInt32BitsToSingle(b);
            ushort hi = MasterSplit.Hi(x);
            short lo = MasterSplit.Lo(x);
            uint joined = BitConverter.SingleToUInt32Bits(MasterSplit.Join(hi, lo));
            float hiValue = BitConverter.UInt32BitsToSingle((uint)hi << 16);
            if (float.IsNaN(x))
            {
                Assert.True(float.IsNaN(hiValue), $"{b:X8}: high half {hi:X4} is not NaN");
                Assert.True(float.IsNaN(MasterSplit.Join(hi, lo)));
                Assert.Equal(x < 0 || (b >> 31) == 1, (hi >> 15) == 1);
                return;
            }
            Assert.Equal(b, joined);
            // The same sign, and the nearest bf16 (ties away): |x − hi| ≤ half a bf16 ulp, measured on the bit pattern.
            Assert.Equal(b >> 31, (uint)hi >> 15);
            bool tie = (b & 0xFFFF) == 0x8000;
            if (!tie) Assert.Equal(NearestEven(b), hi);
            else Assert.Equal((ushort)((b >> 16) + 1), hi);
        }).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void Given_spans_When_split_and_joined_vectorised_Then_they_agree_with_the_scalar_split_for_every_length()
    {
        var random = new Random(5);
        foreach (int n in new[] { 0, 1, 7, 8, 15, 16, 17, 33, 100, 1000 })
        {
            var values = new float[n];
            for (int i = 0; i < n; i++) values[i] = BitConverter.UInt32BitsToSingle((uint)random.NextInt64(0, 1L << 32));
            var hi = new ushort[n];
            var lo = new short[n];
            MasterSplit.Split(values, hi, lo);
            var back = new float[n];
            MasterSplit.Join(hi, lo, back);
            for (int i = 0; i < n; i++)
            {
                Assert.Equal(MasterSplit.Hi(values[i]), hi[i]);
                Assert.Equal(MasterSplit.Lo(values[i]), lo[i]);
                if (float.IsNaN(values[i])) Assert.True(float.IsNaN(back[i]));
                else Assert.Equal(BitConverter.SingleToUInt32Bits(values[i]), BitConverter.SingleToUInt32Bits(back[i]));
            }
        }
    }

    [Theory]
    [InlineData(0x3F808000u, 0x3F81)] // 1.00390625, a tie with an even high half: nearest-even keeps 0x3F80, the split rounds up
    [InlineData(0xBF808000u, 0xBF81)] // its negative: away from zero in magnitude too
    [InlineData(0x3F818000u, 0x3F82)] // a tie with an odd high half: both round up
    [InlineData(0x7F7FFFFFu, 0x7F80)] // the largest float carries into the exponent: ∞, as nearest-even
    [InlineData(0xFFFFFFFFu, 0xFFFF)] // a negative NaN stays a negative NaN (the plain carry would wrap to +0)
    [InlineData(0x7FFFFFFFu, 0x7FFF)] // a positive NaN stays NaN (the plain carry would reach the sign: −0)
    [InlineData(0x7F800001u, 0x7FC0)] // a signalling NaN with a low payload is quieted, not rounded to ∞
    public void Given_edge_bit_patterns_When_split_Then_the_high_half_is_the_expected_bf16(uint bits, int expectedHi)
    {
        Assert.Equal((ushort)expectedHi, MasterSplit.Hi(BitConverter.UInt32BitsToSingle(bits)));
    }
}

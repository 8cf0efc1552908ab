using AiOs.Planner.Engine.Optim;
using FsCheck;
using FsCheck.Fluent;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// The host adds of a later micro-batch's gradients: vectorised and split evenly over the cores, they give every element
/// the bits of the scalar loop (one widening, one fp32 add), whatever the length, split or thread count.
/// </summary>
public sealed class SpanMathAddTests
{
    private static readonly bool[] Both = [false, true];

    /// <summary>The reference: one element at a time, the widening and the add the engine always did.</summary>
    private static float[] ScalarSum(float[] start, ushort[] bf16, bool overwrite)
    {
        var result = (float[])start.Clone();
        for (int i = 0; i < bf16.Length; i++)
        {
            float x = BitConverter.UInt32BitsToSingle((uint)bf16[i] << 16);
            result[i] = overwrite ? x : result[i] + x;
        }
        return result;
    }

    /// <summary>Same bits, or both NaN (which NaN an add of two NaNs returns is the hardware's choice, not the engine's).</summary>
    private static void AssertSameBits(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            if (float.IsNaN(expected[i])) Assert.True(float.IsNaN(actual[i]), $"element {i}: {actual[i]} for NaN");
            else Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]), $"element {i}: {actual[i]} for {expected[i]}");
        }
    }

    private static (float[] Sum, ushort[] Bf16) Data(int length, int seed)
    {
        var random = new Random(seed);
        var sum = new float[length];
        var bf16 = new ushort[length];
        for (int i = 0; i < length; i++)
        {
            // Any bits for the gradients (signed zeros, subnormals, infinities, NaNs); sums of every magnitude.
            bf16[i] = (ushort)random.Next(0, 1 << 16);
            sum[i] = i % 97 == 0 ? -0f : (float)((random.NextDouble() - 0.5) * Math.Pow(2, random.Next(-140, 100)));
        }
        return (sum, bf16);
    }

    [Fact]
    public void Given_any_lengths_and_bits_When_bf16_gradients_are_added_Then_every_element_is_the_scalar_loops_to_the_bit()
    {
        Prop.ForAll(Gen.Choose(0, 3000).ToArbitrary(), Gen.Choose(0, int.MaxValue).ToArbitrary(), (length, seed) =>
        {
            var (sum, bf16) = Data(length, seed);
            foreach (bool overwrite in Both)
            {
                var actual = (float[])sum.Clone();
                SpanMath.AddBf16(actual, bf16, overwrite);
                AssertSameBits(ScalarSum(sum, bf16, overwrite), actual);
            }
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(200));
    }

    [Theory]
    [InlineData(SpanMath.MinPart * 2)]
    [InlineData(19_677_440 / 8 + 13)]
    [InlineData(SpanMath.MinPart * 33 + 7)]
    public void Given_spans_split_over_the_cores_When_added_Then_every_element_is_the_scalar_loops_to_the_bit(int length)
    {
        var (sum, bf16) = Data(length, length);
        var actual = (float[])sum.Clone();

        SpanMath.AddBf16(actual, bf16);

        AssertSameBits(ScalarSum(sum, bf16, overwrite: false), actual);
    }

    [Fact]
    public void Given_any_length_When_split_evenly_Then_every_element_is_visited_once_in_at_most_one_part_per_core()
    {
        // Lengths just past a multiple of a part (one element more) are where a rounded part size could make one part too many.
        var lengths = Gen.OneOf(Gen.Choose(0, 20 * SpanMath.MinPart), Gen.Choose(1, 20).Select(k => k * SpanMath.MinPart + 1), Gen.Choose(1, 20).Select(k => 2 * k * SpanMath.MinPart + 3));
        Prop.ForAll(lengths.ToArbitrary(), length =>
        {
            var visits = new int[length];
            int parts = 0;
            SpanMath.EvenFor(length, (start, count) =>
            {
                Interlocked.Increment(ref parts);
                for (int i = start; i < start + count; i++) Interlocked.Increment(ref visits[i]);
            });
            Assert.All(visits, v => Assert.Equal(1, v));
            Assert.InRange(parts, 1, Math.Max(1, Environment.ProcessorCount));
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(40));
    }

    [Fact]
    public void Given_fp32_gradients_over_several_parts_When_added_Then_they_are_the_element_wise_sums()
    {
        int length = SpanMath.MinPart * 5 + 3;
        var (start, _) = Data(length, 5);
        var add = Data(length, 6).Sum;
        var actual = (float[])start.Clone();

        SpanMath.AddInPlace(actual, add);

        AssertSameBits(start.Zip(add, (a, b) => a + b).ToArray(), actual);
    }
}

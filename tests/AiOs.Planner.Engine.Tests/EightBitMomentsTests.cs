using System.Runtime.InteropServices;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Optim;
using AiOs.Planner.Optim;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// The engine's 8-bit moments with a bf16 copy: written in the update's pass, it equals the separate cast of the updated
/// master that the engine made before (<see cref="PrecisionCast.ToBf16"/>), across tensor cuts, and changes nothing else.
/// </summary>
public class EightBitMomentsTests
{
    // One unit of two tensors: the sub-group [1000, 7000) starts mid-tensor and crosses the cut at 5000.
    private static readonly SubGroup Group = new(Unit: 0, Index: 0, Offset: 1000, Elements: 6000);

    private static EightBitMoments Moments() => new([[0, 5000]], new AdamWOptions { LearningRate = 1e-2, WeightDecay = 0.1 }, threads: 2);

    [Fact]
    public void Given_a_bf16_copy_When_a_sub_group_is_stepped_Then_the_copy_is_the_cast_of_the_updated_master_and_nothing_else_changes()
    {
        var rng = new Random(3);
        EightBitMoments plain = Moments(), copied = Moments();
        float[] a = Enumerable.Range(0, Group.Elements).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(), b = (float[])a.Clone();
        a[17] = b[17] = float.NaN;
        byte[] ma = new byte[plain.MomentBytes(Group)], mb = new byte[copied.MomentBytes(Group)];
        var bf16 = new ushort[Group.Elements];
        var expected = new byte[2 * Group.Elements];
        for (int step = 1; step <= 3; step++)
        {
            float[] g = Enumerable.Range(0, Group.Elements).Select(_ => (float)(rng.NextDouble() - 0.5) * 1e-2f).ToArray();
            plain.Step(Group, a, g, ma, step, 0.5f, []);
            copied.Step(Group, b, g, mb, step, 0.5f, bf16);
            Assert.Equal(a, b);
            Assert.Equal(ma, mb);
            PrecisionCast.ToBf16(a, expected);
            Assert.Equal(MemoryMarshal.Cast<byte, ushort>(expected).ToArray(), bf16);
        }
    }

    [Fact]
    public void Given_a_bf16_copy_of_the_wrong_length_Then_nothing_is_stepped_and_the_message_names_the_sub_group_and_both_lengths()
    {
        EightBitMoments moments = Moments();
        float[] master = Enumerable.Repeat(0.5f, Group.Elements).ToArray(), gradient = Enumerable.Repeat(1f, Group.Elements).ToArray();
        var e = Assert.Throws<ArgumentException>(() => moments.Step(Group, master, gradient,
            new byte[moments.MomentBytes(Group)], 1, 1f, new ushort[Group.Elements - 1]));
        Assert.All(master, x => Assert.Equal(0.5f, x));
        Assert.Contains("sub-group 0 of unit 0", e.Message);
        Assert.Contains("6000 parameters", e.Message);
        Assert.Contains("5999 elements", e.Message);
    }

    [Fact]
    public void Given_a_sub_group_of_several_chunks_cut_mid_chunk_When_encoded_on_every_core_Then_codes_and_scales_are_one_pass_per_tensor_piece()
    {
        // Tensors start at 0 and 1,500,003: the sub-group [1000, 1000 + 3·2^20 + 4321) has a piece of 1,499,003 values (two
        // chunks, the second ending mid-block) and one of 1,650,637 (two chunks); the reference quantises each piece in one pass.
        var group = new SubGroup(Unit: 0, Index: 0, Offset: 1000, Elements: 3 * Chunked.Size + 4321);
        var moments = new EightBitMoments([[0, 1_500_003]], new AdamWOptions { LearningRate = 1e-3 }, threads: 2);
        var rng = new Random(11);
        float[] m = Enumerable.Range(0, group.Elements).Select(_ => (float)(rng.NextDouble() - 0.5) * 1e-3f).ToArray();
        float[] v = m.Select(x => x * x * (float)rng.NextDouble()).ToArray();
        var encoded = new byte[moments.MomentBytes(group)];
        moments.Encode(group, m, v, encoded);

        int n = group.Elements, first = 1_500_003 - 1000;
        int blocks0 = (int)BlockwiseQuantization.Blocks(first), blocks1 = (int)BlockwiseQuantization.Blocks(n - first), scales = blocks0 + blocks1;
        var codes = new byte[2 * n];
        var scaleValues = new float[2 * scales];
        foreach ((int start, int length, int scaleOffset) in new[] { (0, first, 0), (first, n - first, blocks0) })
        {
            int blocks = (int)BlockwiseQuantization.Blocks(length);
            BlockwiseQuantization.Quantize(m.AsSpan(start, length), codes.AsSpan(start, length), scaleValues.AsSpan(scaleOffset, blocks), DynamicQuantizationMap.Signed);
            BlockwiseQuantization.QuantizeSecondMoment(v.AsSpan(start, length), codes.AsSpan(n + start, length), scaleValues.AsSpan(scales + scaleOffset, blocks));
        }
        byte[] expected = [.. codes, .. MemoryMarshal.AsBytes(scaleValues.AsSpan()).ToArray()];
        Assert.Equal(expected.Length, encoded.Length);
        Assert.True(expected.AsSpan().SequenceEqual(encoded), "the encoded moments differ from one pass per piece");
    }
}

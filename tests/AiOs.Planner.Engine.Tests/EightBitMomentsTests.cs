using System.Runtime.InteropServices;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Optim;

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
}

using AiOs.Planner.Engine.Collectives;
using FsCheck;
using FsCheck.Fluent;

namespace AiOs.Planner.Engine.Tests;

/// <summary>The vectorised reduction arithmetic gives the scalar forms' bits for any values and any length.</summary>
public sealed class ReductionKernelsTests
{
    /// <summary>Floats from raw bits: every class of value (NaN, infinities, subnormals, ties in bf16 rounding) turns up.</summary>
    private static Gen<float[]> Floats() =>
        from length in Gen.Choose(0, 200)
        from bits in Gen.Choose(int.MinValue, int.MaxValue).ArrayOf(length)
        select bits.Select(b => (b & 3) == 0 ? BitConverter.Int32BitsToSingle(b & unchecked((int)0xFFFF8000) | 0x8000) : BitConverter.Int32BitsToSingle(b)).ToArray();

    private static bool SameBits(float a, float b) => BitConverter.SingleToInt32Bits(a) == BitConverter.SingleToInt32Bits(b) || (float.IsNaN(a) && float.IsNaN(b));

    [Fact]
    public void Given_any_floats_When_added_divided_widened_and_narrowed_Then_the_vector_forms_equal_the_scalar_ones_bit_for_bit()
    {
        Prop.ForAll(Floats().ToArbitrary(), Floats().ToArbitrary(), (x, y) =>
        {
            int n = Math.Min(x.Length, y.Length);
            float[] a = x[..n], b = y[..n];

            float[] sum = (float[])a.Clone();
            ReductionKernels.Add(sum, b);
            for (int i = 0; i < n; i++) Assert.True(SameBits(a[i] + b[i], sum[i]), $"add at {i}");

            float[] divided = (float[])a.Clone();
            ReductionKernels.Divide(divided, 3);
            for (int i = 0; i < n; i++) Assert.True(SameBits(a[i] / 3f, divided[i]), $"divide at {i}");

            ushort[] narrowed = new ushort[n];
            ReductionKernels.ToBf16(a, narrowed);
            for (int i = 0; i < n; i++) Assert.Equal(BFloat16Bits.FromSingle(a[i]), narrowed[i]);

            float[] widened = (float[])b.Clone();
            ReductionKernels.AddBf16(widened, narrowed, overwrite: false);
            for (int i = 0; i < n; i++) Assert.True(SameBits(b[i] + BFloat16Bits.ToSingle(narrowed[i]), widened[i]), $"widen-add at {i}");
            ReductionKernels.AddBf16(widened, narrowed, overwrite: true);
            for (int i = 0; i < n; i++) Assert.True(SameBits(BFloat16Bits.ToSingle(narrowed[i]), widened[i]), $"widen at {i}");
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(300));
    }
}

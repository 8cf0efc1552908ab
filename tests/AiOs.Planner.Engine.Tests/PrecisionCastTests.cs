using System.Runtime.InteropServices;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Engine.Optim;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Tests;

public sealed class PrecisionCastTests
{
    public PrecisionCastTests() => TorchRuntime.EnsureReady();

    [Fact]
    public void Given_Fp32ValuesIncludingTiesAndSpecials_When_CastToBf16_Then_BytesEqualTorchsConversion()
    {
        float[] values =
        [
            0f, -0f, 1f, -1f, 3.14159265f, 1e-40f, 65504f, float.MaxValue, float.PositiveInfinity, float.NegativeInfinity,
            BitConverter.UInt32BitsToSingle(0x3F808000), // exactly halfway, even below: rounds down
            BitConverter.UInt32BitsToSingle(0x3F818000), // exactly halfway, odd below: rounds up
            BitConverter.UInt32BitsToSingle(0x3F808001),
            0.1f, -123.456f, 7.5e-12f,
        ];
        var bytes = new byte[values.Length * 2];

        PrecisionCast.ToBf16(values, bytes);

        using var t = tensor(values).to(ScalarType.BFloat16);
        Assert.Equal(t.bytes.ToArray(), bytes);
    }

    [Fact]
    public void Given_NaN_When_CastToBf16_Then_ItStaysNaN()
    {
        var bytes = new byte[2];

        PrecisionCast.ToBf16([float.NaN], bytes);

        ushort bits = MemoryMarshal.Cast<byte, ushort>(bytes)[0];
        Assert.Equal(0x7F80, bits & 0x7F80);
        Assert.NotEqual(0, bits & 0x007F);
    }

    /// <summary>fp32 values (no NaN) that reach every fp16 case: normal, subnormal, halfway ties both ways, overflow to infinity, infinities, zeros.</summary>
    private static float[] Fp16Cases(int count, int seed)
    {
        var random = new Random(seed);
        var values = new float[count];
        float[] edges =
        [
            0f, -0f, 1f, -1f, 65504f, 65519.996f, 65520f, -65520f, 6.1035156e-5f, 5.9604645e-8f, 2.9802322e-8f, 2.9802326e-8f, 1e-9f,
            1.00048828125f, 1.00146484375f, 1.0009765625f, 3.14159265f, -123.456f, float.MaxValue, float.PositiveInfinity, float.NegativeInfinity,
        ];
        for (int i = 0; i < count; i++)
        {
            values[i] = (i % 5) switch
            {
                0 => edges[i / 5 % edges.Length],
                // Any finite bit pattern (an all-ones exponent taken down by one): most overflow or vanish, as fp32 spans far wider exponents.
                1 => FiniteBits(random.Next() & 0x7FFFFFFF | (random.Next(2) << 31)),
                // fp16's exponent range, mantissas with their low bits set and halfway ties.
                2 => (float)((random.NextDouble() * 2 - 1) * Math.Pow(2, random.Next(-26, 16))),
                3 => BitConverter.UInt32BitsToSingle(0x38000000u + ((uint)random.Next(0, 0x0F000000) & ~0x1FFFu) + 0x1000u),
                _ => (float)(random.NextDouble() * 1e-4),
            };
        }
        return values;
    }

    /// <summary>The float of <paramref name="bits"/>, its exponent lowered by one where it is all ones (no infinity or NaN).</summary>
    private static float FiniteBits(int bits) => BitConverter.Int32BitsToSingle((bits & 0x7F800000) == 0x7F800000 ? bits - 0x00800000 : bits);

    [Fact]
    public void Given_NaN_When_CastToFp16_Then_ItStaysNaN()
    {
        var bytes = new byte[4];

        PrecisionCast.ToFp16([float.NaN, -float.NaN], bytes);

        // Payloads are not compared: torch's scalar and vector casts keep different ones.
        Assert.All(MemoryMarshal.Cast<byte, Half>(bytes).ToArray(), h => Assert.True(Half.IsNaN(h)));
    }

    [Fact]
    public void Given_Fp32ValuesAcrossChunksIncludingTiesSubnormalsAndOverflow_When_CastToFp16_Then_BytesEqualTorchsConversion()
    {
        // Two chunks and a tail (Chunked.Size is 1 << 20), so the parallel pass and the vector loop's remainder both count.
        float[] values = Fp16Cases((1 << 21) + 37, seed: 11);
        var bytes = new byte[values.Length * 2];

        PrecisionCast.ToFp16(values, bytes);

        using var t = tensor(values).to(ScalarType.Float16);
        Assert.Equal(t.bytes.ToArray(), bytes);
    }

    [Fact]
    public void Given_Fp16Values_When_WidenedOrAdded_Then_EachElementIsTheExactFp32SumOfTheCast()
    {
        float[] values = Fp16Cases((1 << 20) + 1000, seed: 12);
        var halves = new Half[values.Length];
        PrecisionCast.ToFp16(values, MemoryMarshal.AsBytes(halves.AsSpan()));
        var widened = new float[values.Length];
        var summed = new float[values.Length];
        for (int i = 0; i < summed.Length; i++) summed[i] = i % 3 - 1.25f;
        var expected = summed.ToArray();

        PrecisionCast.AddFp16(widened, halves, overwrite: true);
        PrecisionCast.AddFp16(summed, halves, overwrite: false);

        for (int i = 0; i < values.Length; i++)
        {
            Assert.Equal(BitConverter.SingleToInt32Bits((float)halves[i]), BitConverter.SingleToInt32Bits(widened[i]));
            Assert.Equal(BitConverter.SingleToInt32Bits(expected[i] + (float)halves[i]), BitConverter.SingleToInt32Bits(summed[i]));
        }
    }
}

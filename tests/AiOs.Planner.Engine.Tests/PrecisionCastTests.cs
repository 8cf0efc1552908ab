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
}

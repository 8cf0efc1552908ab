namespace AiOs.Planner.Optim;

/// <summary>
/// The arithmetic decode's constants: a code's value without a table read. Within a decade the values are evenly
/// spaced, value = lower + (rank − first + ½)·width, and the decade is the binade of the rank (signed: of rank | 1;
/// unsigned: of rank + 1), so eight-entry tables by binade (vpermps shuffles) give every value to within one unit in
/// the last place; a ±1 correction per code, kept as two 256-bit masks, makes it exact (checked for all 256 codes
/// when the map is built).
/// </summary>
public sealed partial class DynamicQuantizationMap
{
    /// <summary>Per binade lane: subtracted from the rank to give the position of the value in its decade (j + ½).</summary>
    internal float[] DecodeOffset { get; } = new float[8];

    /// <summary>Per binade lane: the decade's part width.</summary>
    internal float[] DecodeSlope { get; } = new float[8];

    /// <summary>Per binade lane: the decade's lower end.</summary>
    internal float[] DecodeBase { get; } = new float[8];

    /// <summary>Bit c set: code c's approximate value is one unit in the last place low (256 bits, 8 words).</summary>
    internal int[] DecodeUp { get; } = new int[8];

    /// <summary>Bit c set: code c's approximate value is one unit in the last place high.</summary>
    internal int[] DecodeDown { get; } = new int[8];

    private void BuildDecodeTables(bool signed)
    {
        // Lane of binade k is (k + 7) & 7, as vpermps reads the float exponent field 127 + k.
        int rank = 1;
        for (int d = 0; d < 7; d++)
        {
            int parts = signed ? 1 << d : 1 << (d + 1);
            int lane = signed ? (d + 7) & 7 : d;
            DecodeOffset[lane] = rank - 0.5f;
            DecodeSlope[lane] = (float)(0.9 * Math.Pow(10, d - 6) / parts);
            DecodeBase[lane] = (float)Math.Pow(10, d - 7);
            rank += parts;
        }
        if (signed)
        {
            // Binade 0 holds ranks 0 and 1 (0 and decade 0's one value): value = rank × that value. Binade 7 holds rank 128, 1.
            (DecodeOffset[7], DecodeSlope[7], DecodeBase[7]) = (0, _magnitudes[1], 0);
            (DecodeOffset[6], DecodeSlope[6], DecodeBase[6]) = (0, 0, 1);
        }
        else (DecodeOffset[7], DecodeSlope[7], DecodeBase[7]) = (0, 1f / 255, 0); // binades 0 and 8: ranks 0 and 255, 0 and 1

        for (int c = 0; c < 256; c++)
        {
            int want = BitConverter.SingleToInt32Bits(Math.Abs(_values[c]));
            int got = BitConverter.SingleToInt32Bits(Math.Abs(ArithmeticValue(c)));
            if (Math.Abs(want - got) > 1)
                throw new InvalidOperationException($"Code {c} decodes to {ArithmeticValue(c)}, {want - got} units from {_values[c]}; a ±1 correction cannot fix it.");
            if (want > got) DecodeUp[c >> 5] |= 1 << (c & 31);
            if (want < got) DecodeDown[c >> 5] |= 1 << (c & 31);
        }
        for (int c = 0; c < 256; c++)
            if (BitConverter.SingleToInt32Bits(ArithmeticValue(c)) != BitConverter.SingleToInt32Bits(_values[c]))
                throw new InvalidOperationException($"Code {c} decodes to {ArithmeticValue(c)}, not {_values[c]}.");
    }

    /// <summary>The scalar twin of the vector decode, operation for operation: the value of <paramref name="code"/> (0 … 255).</summary>
    internal float ArithmeticValue(int code)
    {
        int rank = code, key = code + 1, sign = 0;
        if (IsSigned)
        {
            int t = code - 127;
            rank = Math.Abs(t);
            key = rank | 1;
            sign = t & int.MinValue;
        }
        int lane = (BitConverter.SingleToInt32Bits((float)key) >> 23) & 7;
        float v = MathF.FusedMultiplyAdd(rank - DecodeOffset[lane], DecodeSlope[lane], DecodeBase[lane]);
        int shift = ~code & 31;
        int up = (DecodeUp[code >> 5] << shift) >> 31, down = (DecodeDown[code >> 5] << shift) >> 31;
        return BitConverter.Int32BitsToSingle((BitConverter.SingleToInt32Bits(v) - up + down) | sign);
    }
}

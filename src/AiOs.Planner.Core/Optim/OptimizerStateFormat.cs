using AiOs.Planner.Units;

namespace AiOs.Planner.Optim;

/// <summary>How Adam's state is stored between steps (in RAM, on NVMe and in checkpoints).</summary>
public enum OptimizerStateFormat
{
    /// <summary>fp32 master weights and fp32 moments: 12 bytes per parameter.</summary>
    Fp32,

    /// <summary>
    /// fp32 master weights, both moments block-wise 8-bit (Dettmers et al. 2022): 1 byte per moment per parameter
    /// plus one fp32 scale per <see cref="BlockwiseQuantization.BlockSize"/> values of each moment.
    /// </summary>
    EightBit,
}

/// <summary>The bytes each <see cref="OptimizerStateFormat"/> stores and moves, for the planner, the simulator and the reports.</summary>
public static class OptimizerStateFormats
{
    /// <summary>The command-line and manifest spelling: <c>fp32</c> or <c>8bit</c>.</summary>
    public static string Name(this OptimizerStateFormat format) => format switch
    {
        OptimizerStateFormat.Fp32 => "fp32",
        OptimizerStateFormat.EightBit => "8bit",
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, null),
    };

    /// <summary>Parses <c>fp32</c> or <c>8bit</c> (case-insensitive); null for anything else.</summary>
    public static OptimizerStateFormat? Parse(string? text) => text?.Trim().ToLowerInvariant() switch
    {
        "fp32" => OptimizerStateFormat.Fp32,
        "8bit" => OptimizerStateFormat.EightBit,
        _ => null,
    };

    /// <summary>Bytes of one moment (m or v) of a tensor of <paramref name="elements"/> values, scales included.</summary>
    public static Bytes MomentBytes(this OptimizerStateFormat format, long elements) => format switch
    {
        OptimizerStateFormat.Fp32 => Bytes.OfElements(elements, sizeof(float)),
        OptimizerStateFormat.EightBit => new Bytes(checked(elements + BlockwiseQuantization.Blocks(elements) * sizeof(float))),
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, null),
    };

    /// <summary>
    /// Bytes of the whole optimizer state of <paramref name="elements"/> parameters: fp32 master (4 per parameter)
    /// plus both moments. This is also what an offloaded step reads and writes back per parameter.
    /// </summary>
    public static Bytes StateBytes(this OptimizerStateFormat format, long elements) =>
        Bytes.OfElements(elements, sizeof(float)) + format.MomentBytes(elements) * 2;

    /// <summary>
    /// Bytes per parameter of the whole state for a large tensor (the block scales spread over their blocks):
    /// 12 for fp32, 6 + 8 / 2048 ≈ 6.004 for 8-bit. Use <see cref="StateBytes"/> for exact counts.
    /// </summary>
    public static double BytesPerParameter(this OptimizerStateFormat format) => format switch
    {
        OptimizerStateFormat.Fp32 => 12,
        OptimizerStateFormat.EightBit => 6 + 2.0 * sizeof(float) / BlockwiseQuantization.BlockSize,
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, null),
    };
}

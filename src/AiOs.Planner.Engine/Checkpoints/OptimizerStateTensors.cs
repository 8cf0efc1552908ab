using AiOs.Planner.Optim;

namespace AiOs.Planner.Engine.Checkpoints;

/// <summary>One tensor of a safetensors file as raw little-endian bytes and the format's dtype name.</summary>
/// <param name="Name">The tensor's name.</param>
/// <param name="DType"><c>F32</c> or <c>U8</c> here.</param>
/// <param name="Shape">Outermost first.</param>
/// <param name="Data">Exactly elements × element size bytes.</param>
public sealed record RawTensor(string Name, string DType, long[] Shape, byte[] Data);

/// <summary>
/// The optimizer file's tensors in either state format. fp32: <c>exp_avg.&lt;name&gt;</c> and <c>exp_avg_sq.&lt;name&gt;</c>
/// as F32 of the weight's shape. 8-bit: <c>exp_avg_q8.&lt;name&gt;</c> and <c>exp_avg_sq_q8.&lt;name&gt;</c> as U8 codes of
/// the weight's shape, and <c>exp_avg_scales.&lt;name&gt;</c> and <c>exp_avg_sq_scales.&lt;name&gt;</c> as F32
/// [ceil(elements / 2048)], blocks counted from each tensor's first element, codes in
/// <see cref="DynamicQuantizationMap.Signed"/> (first moment) and, for the second, <see cref="DynamicQuantizationMap.Unsigned"/> codes of √v
/// with scale √max v (<see cref="BlockwiseQuantization.QuantizeSecondMoment(ReadOnlySpan{float}, Span{byte}, Span{float})"/>).
/// The 8-bit names differ from the fp32 ones so that a reader expecting fp32 moments finds none rather than misreading bytes.
/// </summary>
public static class OptimizerStateTensors
{
    /// <summary>Metadata key of the optimizer file (and the manifest's field) that names the format.</summary>
    public const string FormatKey = "optimizer_state";

    /// <summary>The 8-bit file's metadata: format, block size and the two maps, checked when it is read.</summary>
    public static IReadOnlyDictionary<string, string> EightBitMetadata { get; } = new Dictionary<string, string>
    {
        [FormatKey] = OptimizerStateFormat.EightBit.Name(),
        ["block_size"] = BlockwiseQuantization.BlockSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["exp_avg_map"] = "dynamic-signed-7exp",
        // v is coded by its square root (BlockwiseQuantization.QuantizeSecondMoment); files coding v itself (before 2026-12-05 05:20 UTC) are refused.
        ["exp_avg_sq_map"] = "sqrt-dynamic-unsigned-7exp",
    };

    /// <summary>The moments of the tensor <paramref name="name"/> as stored in <paramref name="format"/>.</summary>
    /// <exception cref="ArgumentException">A moment holds NaN or ±∞ (8-bit cannot store it).</exception>
    public static IEnumerable<RawTensor> Encode(string name, long[] shape, float[] expAvg, float[] expAvgSq, OptimizerStateFormat format)
    {
        if (format == OptimizerStateFormat.Fp32)
        {
            yield return new RawTensor("exp_avg." + name, "F32", shape, AsBytes(expAvg));
            yield return new RawTensor("exp_avg_sq." + name, "F32", shape, AsBytes(expAvgSq));
            yield break;
        }
        foreach (var (prefix, values, second) in new[] { ("exp_avg", expAvg, false), ("exp_avg_sq", expAvgSq, true) })
        {
            var codes = new byte[values.Length];
            var scales = new float[BlockwiseQuantization.Blocks(values.Length)];
            try
            {
                if (second) BlockwiseQuantization.QuantizeSecondMoment(values, codes, scales);
                else BlockwiseQuantization.Quantize(values, codes, scales, DynamicQuantizationMap.Signed);
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"{prefix}.{name}: {e.Message}", e);
            }
            yield return new RawTensor($"{prefix}_q8.{name}", "U8", shape, codes);
            yield return new RawTensor($"{prefix}_scales.{name}", "F32", [scales.Length], AsBytes(scales));
        }
    }

    /// <summary>
    /// The fp32 moments of the tensor <paramref name="name"/> of <paramref name="elements"/> values read from an
    /// optimizer file in <paramref name="format"/> (8-bit is dequantised); null when the file lacks them.
    /// </summary>
    /// <exception cref="InvalidDataException">A tensor is there with the wrong dtype or size.</exception>
    public static (float[] ExpAvg, float[] ExpAvgSq)? Decode(SafeTensorsFile file, string name, long elements, OptimizerStateFormat format)
    {
        if (format == OptimizerStateFormat.Fp32)
        {
            float[]? m = Floats(file, "exp_avg." + name, elements), v = Floats(file, "exp_avg_sq." + name, elements);
            return m is null || v is null ? null : (m, v);
        }
        float[]? mq = Dequantized(file, "exp_avg", name, elements, second: false);
        float[]? vq = Dequantized(file, "exp_avg_sq", name, elements, second: true);
        return mq is null || vq is null ? null : (mq, vq);
    }

    /// <summary>Checks that an 8-bit optimizer file was written with this block size and these maps.</summary>
    /// <exception cref="InvalidDataException">Its metadata names another layout.</exception>
    public static void CheckEightBitMetadata(SafeTensorsFile file)
    {
        foreach (var (key, expected) in EightBitMetadata)
            if (!file.Metadata.TryGetValue(key, out string? found) || found != expected)
                throw new InvalidDataException($"{file.Path}: its metadata gives {key} = '{found ?? "(missing)"}', but this version reads 8-bit optimizer state only with {key} = '{expected}'.");
    }

    private static float[]? Dequantized(SafeTensorsFile file, string prefix, string name, long elements, bool second)
    {
        if (!file.Tensors.TryGetValue($"{prefix}_q8.{name}", out SafeTensorEntry? codes) || !file.Tensors.TryGetValue($"{prefix}_scales.{name}", out SafeTensorEntry? scales))
            return null;
        long blocks = BlockwiseQuantization.Blocks(elements);
        if (codes.DType != "U8" || codes.Elements != elements || scales.DType != "F32" || scales.Elements != blocks)
            throw new InvalidDataException($"{file.Path}: {codes.Name} must be U8 of {elements} elements and {scales.Name} F32 of {blocks}; found {codes.DType} {codes.ShapeText} and {scales.DType} {scales.ShapeText}.");
        var scaleValues = new float[blocks];
        file.ReadFloats(scales, 0, scaleValues);
        var values = new float[elements];
        if (second) BlockwiseQuantization.DequantizeSecondMoment(file.ReadBytes(codes), scaleValues, values);
        else BlockwiseQuantization.Dequantize(file.ReadBytes(codes), scaleValues, values, DynamicQuantizationMap.Signed);
        return values;
    }

    private static float[]? Floats(SafeTensorsFile file, string tensor, long elements)
    {
        if (!file.Tensors.TryGetValue(tensor, out SafeTensorEntry? entry)) return null;
        if (entry.DType != "F32" || entry.Elements != elements)
            throw new InvalidDataException($"{file.Path}: {tensor} must be F32 of {elements} elements; found {entry.DType} {entry.ShapeText}.");
        var values = new float[elements];
        file.ReadFloats(entry, 0, values);
        return values;
    }

    private static byte[] AsBytes(float[] values) => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
}

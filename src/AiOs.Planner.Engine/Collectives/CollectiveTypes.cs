using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Collectives;

/// <summary>The collectives' element types for the engine's tensors.</summary>
public static class CollectiveTypes
{
    /// <summary>
    /// The element that carries <paramref name="type"/>'s bits through a copy (all-gather, broadcast): fp16 travels as
    /// 2-byte bf16 elements, which a copy leaves bit for bit.
    /// </summary>
    public static CollectiveElement Carrier(ScalarType type) => type switch
    {
        ScalarType.Float32 => CollectiveElement.Float32,
        ScalarType.BFloat16 or ScalarType.Float16 => CollectiveElement.BFloat16,
        ScalarType.Float64 => CollectiveElement.Float64,
        _ => throw new NotSupportedException($"Collectives do not carry {type} tensors."),
    };

    /// <summary>The element a reduction of <paramref name="type"/> values runs in: bf16 as is, fp16 widened to fp32 (the collectives add no fp16).</summary>
    public static ScalarType ReducedIn(ScalarType type) => type == ScalarType.Float16 ? ScalarType.Float32 : type;
}

using TorchSharp;

namespace AiOs.Planner.Engine.Native;

/// <summary>
/// Scalars that live as long as the process. TorchSharp 0.107 turns a number passed where a <see cref="Scalar"/> is taken
/// into a temporary whose native handle the call reads and which nothing keeps alive across the call: a garbage collection
/// during the call can free it first (CI, 2026-12-05: "Unknown scalar type" from <c>linalg_vector_norm</c>, and
/// "Expected false to be true" from <c>Scalar::toFloat</c> in the resident trainer's <c>add_</c> of accumulated
/// gradients). Constants come from here; a variable is converted into a <c>using</c> local, which the frame holds until
/// the call has returned.
/// </summary>
internal static class KeptScalars
{
    /// <summary>1, e.g. the alpha of <c>add_(other, alpha)</c>.</summary>
    public static readonly Scalar One = 1;

    /// <summary>2.</summary>
    public static readonly Scalar Two = 2;
}

using System.Text.Json.Serialization;
using AiOs.Planner.Descriptions;

namespace AiOs.Planner.Models;

/// <summary>The GELU of a <see cref="FfnKind.GeluMlp"/> block.</summary>
public enum ActivationKind
{
    /// <summary>Exact GELU, x·Φ(x) (PyTorch's <c>gelu</c>; Hugging Face <c>activation_function: "gelu"</c>).</summary>
    Gelu,
    /// <summary>
    /// The tanh approximation GPT-2 was trained with, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    /// (Hugging Face <c>gelu_new</c>, <c>gelu_pytorch_tanh</c>).
    /// </summary>
    GeluTanh,
}

/// <summary>How rotary inverse frequencies are rescaled for a longer context.</summary>
public enum RopeScalingKind
{
    /// <summary>Llama 3.1's frequency-dependent scaling (Hugging Face <c>rope_type: "llama3"</c>).</summary>
    Llama3,
}

/// <summary>
/// Rescaling of the rotary inverse frequencies, as in a Hugging Face config's <c>rope_scaling</c>. For
/// <see cref="RopeScalingKind.Llama3"/>, with wavelength λ = 2π / inv_freq and L = <see cref="OriginalMaxPositionEmbeddings"/>:
/// λ &lt; L / high_freq_factor keeps inv_freq; λ &gt; L / low_freq_factor divides it by <see cref="Factor"/>; in between it
/// is (1 − s)·inv_freq / factor + s·inv_freq with s = (L / λ − low_freq_factor) / (high_freq_factor − low_freq_factor).
/// </summary>
public sealed record RopeScaling
{
    /// <summary>The scaling rule; only Llama 3.1's is supported.</summary>
    [JsonConverter(typeof(ChoiceJsonConverter<RopeScalingKind>))]
    public required RopeScalingKind RopeType { get; init; }
    /// <summary>How much the lowest frequencies are slowed (Llama 3.1: 8).</summary>
    public required double Factor { get; init; }
    /// <summary>Wavelengths above L / low_freq_factor are scaled fully (Llama 3.1: 1).</summary>
    public required double LowFreqFactor { get; init; }
    /// <summary>Wavelengths below L / high_freq_factor are not scaled (Llama 3.1: 4).</summary>
    public required double HighFreqFactor { get; init; }
    /// <summary>The context length L the model was first trained with (Llama 3.1: 8192).</summary>
    public required int OriginalMaxPositionEmbeddings { get; init; }

    /// <summary>Adds a problem for each bad field under <paramref name="path"/>.</summary>
    internal void Check(ValidationProblems p, string path)
    {
        p.Positive(path + ".factor", Factor);
        p.Positive(path + ".low_freq_factor", LowFreqFactor);
        p.Positive(path + ".high_freq_factor", HighFreqFactor);
        p.Positive(path + ".original_max_position_embeddings", OriginalMaxPositionEmbeddings);
        if (HighFreqFactor <= LowFreqFactor)
            p.Add(path + ".high_freq_factor", $"must be greater than low_freq_factor ({LowFreqFactor}); found {HighFreqFactor}");
    }
}

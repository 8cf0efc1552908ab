using AiOs.Planner.Descriptions;
using AiOs.Planner.Models;

namespace AiOs.Planner.Hardware;

/// <summary>
/// The kind of the bundled engine's decoder layer, as far as its host dispatch goes: a stable key made of what changes
/// the number of kernels one layer pass launches (Engine/Model/DecoderLayer and TransformerOps). Two models of one kind
/// launch the same kernels per layer whatever their sizes, so the dispatch floors measured on one hold for the other
/// (<see cref="EngineKernels.FloorsFor"/>).
/// </summary>
/// <remarks>
/// The parts, joined by <c>/</c>: the norm (<c>layernorm</c>: one kernel; <c>rmsnorm</c>: several element-wise ones);
/// the rotary positions (<c>rope</c>, <c>rope_llama3</c> with Llama 3.1's rescaled frequencies, or <c>no_rope</c>; learned
/// positions live in the embedding, not the layer); the feed-forward block with its activation (<c>gelu_mlp</c>,
/// <c>gelu_tanh_mlp</c>, <c>swiglu</c>); the linear layers' biases (<c>bias</c>, <c>no_bias</c>, or which ones, e.g.
/// <c>qkv_bias</c>); the attention (<c>mha</c>, or <c>gqa</c> with its repeated key and value heads); and dropout
/// (<c>dropout</c>, <c>no_dropout</c>). Sizes, vocabulary, sliding window and rope θ do not change the dispatch.
/// </remarks>
public static class EngineLayerKind
{
    /// <summary>
    /// The kind of GPT-2's layer (models/gpt2.json): the kind the floors of profiles written before per-kind floors were
    /// measured on (<see cref="EngineKernels.FloorKind"/> null). A fixed key rather than read from the catalog at run time,
    /// so that an edited local gpt2.json cannot change what old profiles mean; a test checks it against gpt2.json.
    /// </summary>
    public const string Gpt2 = "layernorm/no_rope/gelu_tanh_mlp/bias/mha/dropout";

    /// <summary>The layer kind of <paramref name="model"/>.</summary>
    public static string Of(ModelSpec model)
    {
        ArgumentNullException.ThrowIfNull(model);
        string norm = model.Norm == NormKind.Layernorm ? "layernorm" : "rmsnorm";
        string positions = model.Positions != PositionKind.Rotary ? "no_rope"
            : model.RopeScaling is { RopeType: RopeScalingKind.Llama3 } ? "rope_llama3" : "rope";
        string ffn = model.FfnKind == FfnKind.Swiglu ? "swiglu" : Choice.NameOf(model.Activation) + "_mlp";
        var biased = new List<string>(3);
        if (model.HasQkvBias) biased.Add("qkv");
        if (model.HasAttentionOutputBias) biased.Add("out");
        if (model.HasMlpBias) biased.Add("mlp");
        string bias = biased.Count switch { 0 => "no_bias", 3 => "bias", _ => string.Join("+", biased) + "_bias" };
        string attention = model.KvHeads != model.NumHeads ? "gqa" : "mha";
        string dropout = model.Dropout > 0 ? "dropout" : "no_dropout";
        return string.Join('/', norm, positions, ffn, bias, attention, dropout);
    }

    /// <summary>The first of <paramref name="families"/> of each layer kind, in order, leaving out kind <paramref name="except"/>.</summary>
    public static IEnumerable<(ModelSpec Family, string Kind)> OnePerKind(IEnumerable<ModelSpec> families, string? except = null)
    {
        ArgumentNullException.ThrowIfNull(families);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        if (except is not null) seen.Add(except);
        foreach (var family in families)
            if (Of(family) is var kind && seen.Add(kind)) yield return (family, kind);
    }
}

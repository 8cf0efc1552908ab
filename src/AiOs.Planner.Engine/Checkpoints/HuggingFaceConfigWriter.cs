using System.Text.Json.Nodes;
using AiOs.Planner.Models;

namespace AiOs.Planner.Engine.Checkpoints;

/// <summary>
/// The Hugging Face <c>config.json</c> of a model description: the inverse of <see cref="HuggingFaceConfig"/>, so that
/// <c>transformers</c> builds the same function the engine computes (sizes, GELU variant, norm ε, rotary base and
/// scaling, tied head) and reading the file back with <c>--model config.json</c> gives the same shape.
/// </summary>
public static class HuggingFaceConfigWriter
{
    /// <summary>The config of <paramref name="spec"/> in the naming of <paramref name="family"/> (GPT-2 or Llama).</summary>
    public static JsonObject For(ModelSpec spec, WeightFamily family)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return family switch
        {
            WeightFamily.Gpt2 => Gpt2(spec),
            WeightFamily.Llama => Llama(spec),
            _ => throw new ArgumentOutOfRangeException(nameof(family), family, "Only GPT-2 and Llama configs are written."),
        };
    }

    private static JsonObject Gpt2(ModelSpec spec) => new()
    {
        ["architectures"] = new JsonArray("GPT2LMHeadModel"),
        ["model_type"] = "gpt2",
        ["vocab_size"] = spec.VocabSize,
        ["n_positions"] = spec.MaxSeqLen,
        ["n_embd"] = spec.HiddenSize,
        ["n_layer"] = spec.NumLayers,
        ["n_head"] = spec.NumHeads,
        ["n_inner"] = spec.FfnSize,
        // gelu_new is GPT-2's tanh approximation; "gelu" is the exact erf form.
        ["activation_function"] = spec.Activation == ActivationKind.GeluTanh ? "gelu_new" : "gelu",
        ["layer_norm_epsilon"] = spec.NormEps,
        // Our dropout sits where GPT-2's three do (embeddings, residual branches, attention weights).
        ["resid_pdrop"] = spec.Dropout,
        ["embd_pdrop"] = spec.Dropout,
        ["attn_pdrop"] = spec.Dropout,
        ["tie_word_embeddings"] = spec.TiedEmbeddings,
        ["scale_attn_weights"] = true,
        ["initializer_range"] = 0.02,
        // GPT-2's end-of-text is the last id (50256 in its own vocabulary); a smaller vocabulary keeps that rule.
        ["bos_token_id"] = spec.VocabSize - 1,
        ["eos_token_id"] = spec.VocabSize - 1,
        ["torch_dtype"] = "float32",
    };

    private static JsonObject Llama(ModelSpec spec) => new()
    {
        ["architectures"] = new JsonArray("LlamaForCausalLM"),
        ["model_type"] = "llama",
        ["vocab_size"] = spec.VocabSize,
        ["hidden_size"] = spec.HiddenSize,
        ["intermediate_size"] = spec.FfnSize,
        ["num_hidden_layers"] = spec.NumLayers,
        ["num_attention_heads"] = spec.NumHeads,
        ["num_key_value_heads"] = spec.KvHeads,
        ["head_dim"] = spec.HeadDim,
        ["hidden_act"] = "silu",
        ["max_position_embeddings"] = spec.MaxSeqLen,
        ["rms_norm_eps"] = spec.NormEps,
        ["rope_theta"] = spec.RopeTheta,
        ["rope_scaling"] = spec.RopeScaling is { } s ? new JsonObject
        {
            ["rope_type"] = "llama3",
            ["factor"] = s.Factor,
            ["low_freq_factor"] = s.LowFreqFactor,
            ["high_freq_factor"] = s.HighFreqFactor,
            ["original_max_position_embeddings"] = s.OriginalMaxPositionEmbeddings,
        } : null,
        // Our bias flag covers every linear layer: Llama splits it into attention and MLP biases.
        ["attention_bias"] = spec.Bias,
        ["mlp_bias"] = spec.Bias,
        // Llama has dropout only on the attention weights; ours also drops on the residual branches while training.
        ["attention_dropout"] = spec.Dropout,
        ["tie_word_embeddings"] = spec.TiedEmbeddings,
        ["pretraining_tp"] = 1,
        ["initializer_range"] = 0.02,
        ["torch_dtype"] = "float32",
    };
}

using System.Text.Json;
using AiOs.Planner.Descriptions;

namespace AiOs.Planner.Models;

/// <summary>Reads a Hugging Face <c>config.json</c> of the GPT-2, Llama, Mistral or Qwen2 families into a <see cref="ModelSpec"/>.</summary>
public static class HuggingFaceConfig
{
    /// <summary>True when the JSON document looks like a Hugging Face config rather than our own format.</summary>
    public static bool Looks(JsonElement root) =>
        root.ValueKind == JsonValueKind.Object &&
        (root.TryGetProperty("model_type", out _) || root.TryGetProperty("n_embd", out _) ||
         root.TryGetProperty("num_hidden_layers", out _) || root.TryGetProperty("architectures", out _));

    /// <summary>
    /// The <c>model_type</c>s whose shape this reader converts exactly and whose computation the engine implements: GPT-2,
    /// and the Llama layout with Mistral's sliding window and Qwen2's Q/K/V biases.
    /// </summary>
    public static IReadOnlyList<string> SupportedTypes { get; } = ["gpt2", "llama", "mistral", "qwen2"];

    /// <summary>Converts a parsed Hugging Face config; <paramref name="source"/> names the file in errors.</summary>
    /// <exception cref="DescriptionException">The <c>model_type</c> is missing or not one of <see cref="SupportedTypes"/>, or a field is bad.</exception>
    public static ModelSpec Convert(JsonElement root, string source, string name)
    {
        string type = ModelType(root);
        if (IsGpt2(root, type)) return FromGpt2(root, source, name);
        return type switch
        {
            "llama" => FromLlama(root, source, name, LlamaBiases(root, source), window: null),
            // MistralAttention and MistralMLP have no biases whatever the config says.
            "mistral" => FromLlama(root, source, name, default, SlidingWindow(root, source)),
            // Qwen2Attention always gives q, k and v a bias (the config has no field for it); o and the MLP have none.
            // Its window applies only with use_sliding_window (and then to layers from max_window_layers on: taking it
            // for every layer is the safe side, as the engine only refuses sequences longer than the window).
            "qwen2" => FromLlama(root, source, name, new Biases(Qkv: true, Output: false, Mlp: false),
                OptionalBool(root, "use_sliding_window") == true ? SlidingWindow(root, source) : null),
            _ => throw UnsupportedType(source, type),
        };
    }

    private static DescriptionException UnsupportedType(string source, string type)
    {
        string supported = string.Join(", ", SupportedTypes);
        string why = type switch
        {
            "" => "is missing, so the family (and with it the biases and the attention) is unknown",
            "gemma" or "gemma2" or "gemma3" => $"'{type}' is not supported: Gemma scales the embeddings, offsets its RMSNorm weights by one, " +
                "gates with GELU and sets head_dim apart from hidden_size / heads, none of which the engine computes",
            _ => $"'{type}' is not supported",
        };
        return new DescriptionException(
            $"{source}, field $.model_type: {why}. Supported model_types: {supported}. " +
            "For another family, write its shape as a models/*.json description instead (see docs/user-guide.md).")
        { File = source, Field = "$.model_type" };
    }

    /// <summary>
    /// The constants of a parsed config that change what the model computes (GELU variant, norm ε, rotary base and
    /// scaling), with the defaults Hugging Face applies where the config leaves one out. Reads nothing else, so a
    /// partial config works; throws <see cref="DescriptionException"/> for values the engine cannot compute.
    /// </summary>
    public static ComputeConstants Constants(JsonElement root, string source)
    {
        string type = ModelType(root);
        if (IsGpt2(root, type))
        {
            // GPT2Config's defaults: gelu_new and 1e-5.
            return new ComputeConstants(Gpt2Activation(root, source), OptionalDouble(root, "layer_norm_epsilon") ?? 1e-5,
                ModelSpec.DefaultRopeTheta, null);
        }
        // LlamaConfig's defaults: rms_norm_eps 1e-6, rope_theta 10000; SwiGLU has no GELU to choose.
        return new ComputeConstants(ActivationKind.Gelu, OptionalDouble(root, "rms_norm_eps") ?? 1e-6,
            RopeTheta(root), RopeScalingOf(root, source));
    }

    private static string ModelType(JsonElement root) =>
        root.TryGetProperty("model_type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "";

    private static bool IsGpt2(JsonElement root, string type) => type == "gpt2" || root.TryGetProperty("n_embd", out _);

    private static ModelSpec FromGpt2(JsonElement root, string source, string name)
    {
        int h = Int(root, "n_embd", source);
        ComputeConstants constants = Constants(root, source);
        return new ModelSpec
        {
            Name = name,
            VocabSize = Int(root, "vocab_size", source),
            HiddenSize = h,
            NumLayers = Int(root, "n_layer", source),
            NumHeads = Int(root, "n_head", source),
            FfnSize = OptionalInt(root, "n_inner", source) ?? 4 * h,
            FfnKind = FfnKind.GeluMlp,
            Norm = NormKind.Layernorm,
            TiedEmbeddings = OptionalBool(root, "tie_word_embeddings") ?? true,
            Positions = PositionKind.Learned,
            MaxSeqLen = OptionalInt(root, "n_positions", source) ?? OptionalInt(root, "n_ctx", source) ?? 1024,
            Bias = true,
            Dropout = OptionalDouble(root, "resid_pdrop") ?? 0.1,
            Activation = constants.Activation,
            NormEps = constants.NormEps,
            Description = $"Imported from Hugging Face config {source}",
        }.Validated(source);
    }

    /// <summary>Which linear layers of a Llama-layout model carry biases.</summary>
    private readonly record struct Biases(bool Qkv, bool Output, bool Mlp);

    /// <summary>LlamaConfig's <c>attention_bias</c> (q, k, v and o together) and <c>mlp_bias</c> (gate, up and down), both off by default.</summary>
    private static Biases LlamaBiases(JsonElement root, string source)
    {
        bool attention = Bool(root, "attention_bias", source) ?? false;
        return new Biases(attention, attention, Bool(root, "mlp_bias", source) ?? false);
    }

    /// <summary><c>sliding_window</c>: null (full attention) or a positive number of tokens.</summary>
    private static int? SlidingWindow(JsonElement root, string source)
    {
        int? window = OptionalInt(root, "sliding_window", source);
        if (window is <= 0)
            throw new DescriptionException($"{source}, field $.sliding_window: must be a positive number of tokens or null (found {window}).")
            { File = source, Field = "$.sliding_window" };
        return window;
    }

    private static ModelSpec FromLlama(JsonElement root, string source, string name, Biases biases, int? window)
    {
        int heads = Int(root, "num_attention_heads", source);
        int hidden = Int(root, "hidden_size", source);
        // Newer configs may set head_dim apart from hidden_size / heads (Mistral-Nemo); our shapes derive it.
        if (OptionalInt(root, "head_dim", source) is { } headDim && heads > 0 && headDim * heads != hidden)
            throw new DescriptionException(
                $"{source}, field $.head_dim: {headDim} is not hidden_size / num_attention_heads ({hidden} / {heads}); " +
                "a head size set apart from the hidden size is not supported.")
            { File = source, Field = "$.head_dim" };
        if (root.TryGetProperty("hidden_act", out var act) && act.ValueKind != JsonValueKind.Null &&
            !(act.ValueKind == JsonValueKind.String && act.GetString() is "silu" or "swish"))
            throw Unsupported(source, "$.hidden_act", act, "supported: silu, the gate of SwiGLU");
        ComputeConstants constants = Constants(root, source);
        return new ModelSpec
        {
            Name = name,
            VocabSize = Int(root, "vocab_size", source),
            HiddenSize = hidden,
            NumLayers = Int(root, "num_hidden_layers", source),
            NumHeads = heads,
            NumKvHeads = OptionalInt(root, "num_key_value_heads", source) ?? heads,
            FfnSize = Int(root, "intermediate_size", source),
            // Every supported family of this shape uses a gated (three-matrix) feed-forward block.
            FfnKind = FfnKind.Swiglu,
            Norm = NormKind.Rmsnorm,
            TiedEmbeddings = OptionalBool(root, "tie_word_embeddings") ?? false,
            Positions = PositionKind.Rotary,
            MaxSeqLen = OptionalInt(root, "max_position_embeddings", source) ?? 4096,
            Bias = false,
            // Left null when off, so an import equals a description that does not mention them.
            QkvBias = biases.Qkv ? true : null,
            AttentionOutputBias = biases.Output ? true : null,
            MlpBias = biases.Mlp ? true : null,
            SlidingWindow = window,
            RopeTheta = constants.RopeTheta,
            RopeScaling = constants.RopeScaling,
            NormEps = constants.NormEps,
            Description = $"Imported from Hugging Face config {source}",
        }.Validated(source);
    }

    private const string Gpt2Activations = "supported: gelu_new, gelu_pytorch_tanh, gelu_fast (the tanh approximation) and gelu (exact)";

    /// <summary>GPT-2's <c>activation_function</c>: the tanh approximations (<c>gelu_new</c> and its equals) or exact <c>gelu</c>.</summary>
    private static ActivationKind Gpt2Activation(JsonElement root, string source)
    {
        if (!root.TryGetProperty("activation_function", out var v) || v.ValueKind == JsonValueKind.Null) return ActivationKind.GeluTanh;
        return v.ValueKind == JsonValueKind.String ? v.GetString() switch
        {
            // gelu_fast writes the same tanh formula with the constants multiplied out.
            "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => ActivationKind.GeluTanh,
            "gelu" => ActivationKind.Gelu,
            _ => throw Unsupported(source, "$.activation_function", v, Gpt2Activations),
        } : throw Unsupported(source, "$.activation_function", v, Gpt2Activations);
    }

    /// <summary>
    /// A Llama <c>rope_scaling</c> object: null or <c>rope_type</c> "default" mean none, "llama3" (Llama 3.1) is
    /// read, any other type is refused because the engine would rotate positions differently from the model.
    /// </summary>
    private static RopeScaling? RopeScalingOf(JsonElement root, string source)
    {
        // transformers 5 writes one rope_parameters object (rope_type, rope_theta and the scaling's fields) instead of
        // rope_theta and rope_scaling; read it the same way when rope_scaling is absent.
        string key = root.TryGetProperty("rope_scaling", out _) || RopeParameters(root) is null ? "rope_scaling" : "rope_parameters";
        if (!root.TryGetProperty(key, out var s) || s.ValueKind == JsonValueKind.Null) return null;
        if (s.ValueKind != JsonValueKind.Object)
            throw new DescriptionException($"{source}, field $.{key}: expected an object or null, found {s.GetRawText()}.")
            { File = source, Field = "$." + key };
        // Older configs call the field "type".
        string field = s.TryGetProperty("rope_type", out _) ? "rope_type" : "type";
        JsonElement type = s.TryGetProperty(field, out var t) ? t : default;
        string? name = type.ValueKind == JsonValueKind.String ? type.GetString() : null;
        if (name == "default" || (key == "rope_parameters" && name is null)) return null;
        if (name != "llama3")
            throw Unsupported(source, $"$.{key}." + field, type,
                "supported: llama3 (Llama 3.1) and default; with any other scaling the engine would rotate positions differently from the model");
        return new RopeScaling
        {
            RopeType = RopeScalingKind.Llama3,
            Factor = RequiredDouble(s, "factor", source, $"$.{key}."),
            LowFreqFactor = RequiredDouble(s, "low_freq_factor", source, $"$.{key}."),
            HighFreqFactor = RequiredDouble(s, "high_freq_factor", source, $"$.{key}."),
            OriginalMaxPositionEmbeddings = OptionalInt(s, "original_max_position_embeddings", source, $"$.{key}.") ??
                throw Missing(source, $"$.{key}.original_max_position_embeddings"),
        };
    }

    private static DescriptionException Unsupported(string source, string field, JsonElement value, string supported)
    {
        string found = value.ValueKind == JsonValueKind.Undefined ? "nothing" : value.GetRawText();
        return new DescriptionException($"{source}, field {field}: {found} is not supported ({supported}).")
        { File = source, Field = field };
    }

    private static DescriptionException Missing(string source, string field) =>
        new($"{source}, field {field}: required by a Hugging Face config of this family but missing.") { File = source, Field = field };

    private static double RequiredDouble(JsonElement obj, string field, string source, string prefix) =>
        obj.TryGetProperty(field, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw Missing(source, prefix + field);

    private static int Int(JsonElement root, string field, string source) =>
        OptionalInt(root, field, source) ??
        throw new DescriptionException($"{source}, field $.{field}: required by a Hugging Face config of this family but missing.")
        { File = source, Field = "$." + field };

    private static int? OptionalInt(JsonElement root, string field, string source, string prefix = "$.")
    {
        if (!root.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int i))
            throw new DescriptionException($"{source}, field {prefix}{field}: expected a whole number, found {v.GetRawText()}.")
            { File = source, Field = prefix + field };
        return i;
    }

    private static bool? Bool(JsonElement root, string field, string source)
    {
        if (!root.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() :
            throw new DescriptionException($"{source}, field $.{field}: expected true or false, found {v.GetRawText()}.") { File = source, Field = "$." + field };
    }

    /// <summary>transformers 5's <c>rope_parameters</c> object, or null when the config has none.</summary>
    private static JsonElement? RopeParameters(JsonElement root) =>
        root.TryGetProperty("rope_parameters", out var p) && p.ValueKind == JsonValueKind.Object ? p : null;

    /// <summary>The rotary base: <c>rope_theta</c>, else transformers 5's <c>rope_parameters.rope_theta</c>, else LlamaConfig's 10000.</summary>
    private static double RopeTheta(JsonElement root) =>
        OptionalDouble(root, "rope_theta")
        ?? (RopeParameters(root) is { } p ? OptionalDouble(p, "rope_theta") : null)
        ?? ModelSpec.DefaultRopeTheta;

    private static double? OptionalDouble(JsonElement root, string field) =>
        root.TryGetProperty(field, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;

    private static bool? OptionalBool(JsonElement root, string field) =>
        root.TryGetProperty(field, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;
}

/// <summary>The constants of a Hugging Face config that change what a model computes, as the description fields they become.</summary>
/// <param name="Activation">From GPT-2's <c>activation_function</c> (<see cref="ActivationKind.Gelu"/> for the Llama family, which has no GELU).</param>
/// <param name="NormEps">From <c>layer_norm_epsilon</c> (GPT-2) or <c>rms_norm_eps</c> (Llama).</param>
/// <param name="RopeTheta">From <c>rope_theta</c> (Llama).</param>
/// <param name="RopeScaling">From <c>rope_scaling</c> (Llama 3.1), or null.</param>
public sealed record ComputeConstants(ActivationKind Activation, double NormEps, double RopeTheta, RopeScaling? RopeScaling);

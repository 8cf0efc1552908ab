using System.Text.Json;
using AiOs.Planner.Descriptions;

namespace AiOs.Planner.Models;

/// <summary>Reads a Hugging Face <c>config.json</c> of the GPT-2 or Llama families into a <see cref="ModelSpec"/>.</summary>
public static class HuggingFaceConfig
{
    /// <summary>True when the JSON document looks like a Hugging Face config rather than our own format.</summary>
    public static bool Looks(JsonElement root) =>
        root.ValueKind == JsonValueKind.Object &&
        (root.TryGetProperty("model_type", out _) || root.TryGetProperty("n_embd", out _) ||
         root.TryGetProperty("num_hidden_layers", out _) || root.TryGetProperty("architectures", out _));

    /// <summary>Converts a parsed Hugging Face config; <paramref name="source"/> names the file in errors.</summary>
    public static ModelSpec Convert(JsonElement root, string source, string name)
    {
        string type = root.TryGetProperty("model_type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "";
        bool gpt2Style = type == "gpt2" || root.TryGetProperty("n_embd", out _);
        return gpt2Style ? FromGpt2(root, source, name) : FromLlama(root, source, name, type);
    }

    private static ModelSpec FromGpt2(JsonElement root, string source, string name)
    {
        int h = Int(root, "n_embd", source);
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
            Description = $"Imported from Hugging Face config {source}",
        }.Validated(source);
    }

    private static ModelSpec FromLlama(JsonElement root, string source, string name, string type)
    {
        if (type.Length > 0 && type is not ("llama" or "mistral" or "qwen2" or "gemma"))
        {
            throw new DescriptionException(
                $"{source}, field $.model_type: '{type}' is not supported; GPT-2 and Llama-style configs are. " +
                "Write the shape as a models/*.json description instead (see docs/user-guide.md).")
            { File = source, Field = "$.model_type" };
        }
        int heads = Int(root, "num_attention_heads", source);
        return new ModelSpec
        {
            Name = name,
            VocabSize = Int(root, "vocab_size", source),
            HiddenSize = Int(root, "hidden_size", source),
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
            Bias = OptionalBool(root, "attention_bias") ?? false,
            Description = $"Imported from Hugging Face config {source}",
        }.Validated(source);
    }

    private static int Int(JsonElement root, string field, string source) =>
        OptionalInt(root, field, source) ??
        throw new DescriptionException($"{source}, field $.{field}: required by a Hugging Face config of this family but missing.")
        { File = source, Field = "$." + field };

    private static int? OptionalInt(JsonElement root, string field, string source)
    {
        if (!root.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int i))
            throw new DescriptionException($"{source}, field $.{field}: expected a whole number, found {v.GetRawText()}.")
            { File = source, Field = "$." + field };
        return i;
    }

    private static double? OptionalDouble(JsonElement root, string field) =>
        root.TryGetProperty(field, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;

    private static bool? OptionalBool(JsonElement root, string field) =>
        root.TryGetProperty(field, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;
}

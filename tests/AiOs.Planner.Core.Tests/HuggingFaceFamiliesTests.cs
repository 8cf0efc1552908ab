using System.Runtime.CompilerServices;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Models;

namespace AiOs.Planner.Core.Tests;

/// <summary>The Hugging Face families beyond GPT-2 and Llama: Mistral, Qwen2, and the biases Llama's config can switch on.</summary>
public class HuggingFaceFamiliesTests
{
    private const string LlamaShape = """
        "model_type": "llama", "hidden_size": 64, "intermediate_size": 172, "num_attention_heads": 4,
        "num_hidden_layers": 2, "num_key_value_heads": 2, "vocab_size": 256
        """;

    /// <summary>The published config.json files under Data/hf, read from the source tree (they are not copied to the output).</summary>
    private static string Published(string repo, [CallerFilePath] string here = "") =>
        Path.Combine(Path.GetDirectoryName(here)!, "Data", "hf", repo, "config.json");

    private static ModelSpec Llama(string extra) => ModelCatalog.Parse($"{{{LlamaShape}{extra}}}", "config.json");

    [Fact]
    public void Given_the_published_qwen2_7b_config_When_imported_Then_the_count_includes_the_qkv_biases_exactly()
    {
        ModelSpec model = ModelCatalog.LoadFile(Published("Qwen2-7B"));

        Assert.Equal(7_615_616_512L, model.TotalParameters);
        Assert.True(model.HasQkvBias);
        Assert.False(model.HasAttentionOutputBias);
        Assert.False(model.HasMlpBias);
        Assert.Equal("Qwen2-7B", model.Name);
        // use_sliding_window is false: full attention.
        Assert.Null(model.SlidingWindow);
    }

    [Fact]
    public void Given_the_published_mistral_7b_config_When_imported_Then_the_count_is_exact_and_the_window_is_kept()
    {
        ModelSpec model = ModelCatalog.LoadFile(Published("Mistral-7B-v0.1"));

        Assert.Equal(7_241_732_096L, model.TotalParameters);
        Assert.False(model.HasQkvBias);
        Assert.Equal(4096, model.SlidingWindow);
    }

    [Theory]
    [InlineData("qwen2-7b", "Qwen2-7B", 7_615_616_512L)]
    [InlineData("mistral-7b", "Mistral-7B-v0.1", 7_241_732_096L)]
    public void Given_a_bundled_description_When_compared_with_its_import_Then_they_are_the_same_model(string bundled, string repo, long count)
    {
        ModelSpec description = ModelCatalog.Default.Load(bundled);
        ModelSpec imported = ModelCatalog.LoadFile(Published(repo));

        Assert.Equal(count, description.TotalParameters);
        Assert.Equal(imported with { Name = bundled, Description = description.Description }, description);
    }

    [Fact]
    public void Given_llama_with_attention_bias_When_imported_Then_q_k_v_and_o_carry_biases_but_not_the_mlp()
    {
        ModelSpec plain = Llama("");
        ModelSpec biased = Llama(", \"attention_bias\": true");

        // q (64) + k (32) + v (32) + o (64) per layer, 2 layers.
        Assert.Equal(2 * (64 + 32 + 32 + 64), biased.TotalParameters - plain.TotalParameters);
        Assert.False(biased.HasMlpBias);
    }

    [Fact]
    public void Given_llama_with_mlp_bias_When_imported_Then_gate_up_and_down_carry_biases()
    {
        ModelSpec plain = Llama("");

        Assert.Equal(2 * (172 + 172 + 64), Llama(", \"mlp_bias\": true").TotalParameters - plain.TotalParameters);
    }

    [Fact]
    public void Given_a_mistral_config_with_attention_bias_When_imported_Then_it_is_ignored_as_hugging_face_does()
    {
        ModelSpec model = ModelCatalog.Parse($"{{{LlamaShape.Replace("\"llama\"", "\"mistral\"")}, \"attention_bias\": true}}", "config.json");

        Assert.Equal(Llama("").TotalParameters, model.TotalParameters);
    }

    [Theory]
    [InlineData("gemma", "Gemma")]
    [InlineData("phi3", "'phi3' is not supported")]
    [InlineData("falcon", "'falcon' is not supported")]
    public void Given_an_unsupported_model_type_When_imported_Then_the_error_names_it_and_lists_the_supported_ones(string type, string named)
    {
        var e = Assert.Throws<DescriptionException>(() => ModelCatalog.Parse($"{{{LlamaShape.Replace("\"llama\"", $"\"{type}\"")}}}", "config.json"));

        Assert.Equal("$.model_type", e.Field);
        Assert.Contains(named, e.Message);
        Assert.Contains("Supported model_types: gpt2, llama, mistral, qwen2", e.Message);
    }

    [Fact]
    public void Given_a_llama_shaped_config_without_model_type_When_imported_Then_it_is_refused_as_missing()
    {
        var e = Assert.Throws<DescriptionException>(() => ModelCatalog.Parse("""
            {"hidden_size": 64, "intermediate_size": 172, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 256}
            """, "config.json"));

        Assert.Equal("$.model_type", e.Field);
        Assert.Contains("missing", e.Message);
    }

    [Fact]
    public void Given_a_head_dim_apart_from_the_hidden_size_When_imported_Then_it_is_refused_by_name()
    {
        var e = Assert.Throws<DescriptionException>(() => Llama(", \"head_dim\": 32"));

        Assert.Equal("$.head_dim", e.Field);
    }

    [Fact]
    public void Given_another_hidden_act_When_imported_Then_it_is_refused_by_name()
    {
        var e = Assert.Throws<DescriptionException>(() => Llama(", \"hidden_act\": \"gelu\""));

        Assert.Equal("$.hidden_act", e.Field);
    }

    [Fact]
    public void Given_a_description_with_qkv_bias_only_When_counting_Then_only_q_k_v_biases_are_added()
    {
        ModelSpec plain = ModelCatalog.Default.Load("llama-3-8b");
        ModelSpec qkv = plain with { QkvBias = true };

        Assert.Equal(plain.NumLayers * (plain.HiddenSize + 2 * plain.KvDim), qkv.TotalParameters - plain.TotalParameters);
    }

    [Fact]
    public void Given_gpt2_with_bias_When_counting_Then_the_split_fields_follow_bias_and_the_count_is_unchanged()
    {
        ModelSpec gpt2 = ModelCatalog.Default.Load("gpt2");

        Assert.True(gpt2.HasQkvBias && gpt2.HasAttentionOutputBias && gpt2.HasMlpBias);
        Assert.Equal(124_439_808L, gpt2.TotalParameters);
        Assert.Equal(124_439_808L - 12 * (768 + 3072), (gpt2 with { MlpBias = false }).TotalParameters);
    }
}

using AiOs.Planner.Descriptions;
using AiOs.Planner.Models;

namespace AiOs.Planner.Core.Tests;

public class HuggingFaceConfigTests
{
    private const string Gpt2Shape = """
        "model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 256
        """;
    private const string LlamaShape = """
        "model_type": "llama", "hidden_size": 64, "intermediate_size": 172, "num_attention_heads": 4,
        "num_hidden_layers": 2, "num_key_value_heads": 2, "vocab_size": 256
        """;

    private static ModelSpec Gpt2(string extra) => ModelCatalog.Parse($"{{{Gpt2Shape}{extra}}}", "config.json");

    private static ModelSpec Llama(string extra) => ModelCatalog.Parse($"{{{LlamaShape}{extra}}}", "config.json");

    [Theory]
    [InlineData("gelu_new", ActivationKind.GeluTanh)]
    [InlineData("gelu_pytorch_tanh", ActivationKind.GeluTanh)]
    [InlineData("gelu_fast", ActivationKind.GeluTanh)]
    [InlineData("gelu", ActivationKind.Gelu)]
    public void Given_a_gpt2_config_When_imported_Then_activation_function_maps_to_the_gelu_variant(string hf, ActivationKind expected)
    {
        Assert.Equal(expected, Gpt2($", \"activation_function\": \"{hf}\"").Activation);
    }

    [Fact]
    public void Given_a_gpt2_config_without_activation_or_epsilon_When_imported_Then_the_gpt2_config_defaults_apply()
    {
        ModelSpec model = Gpt2("");

        Assert.Equal(ActivationKind.GeluTanh, model.Activation);
        Assert.Equal(1e-5, model.NormEps);
    }

    [Fact]
    public void Given_a_gpt2_config_with_layer_norm_epsilon_When_imported_Then_norm_eps_is_it()
    {
        Assert.Equal(1e-6, Gpt2(", \"layer_norm_epsilon\": 1e-6").NormEps);
    }

    [Fact]
    public void Given_a_gpt2_config_with_another_activation_When_imported_Then_the_error_names_the_field_the_value_and_the_supported_ones()
    {
        var e = Assert.Throws<DescriptionException>(() => Gpt2(", \"activation_function\": \"relu\""));

        Assert.Equal("$.activation_function", e.Field);
        Assert.Contains("\"relu\" is not supported", e.Message);
        Assert.Contains("gelu_new", e.Message);
    }

    [Fact]
    public void Given_a_llama_3_1_config_When_imported_Then_rope_theta_scaling_and_rms_eps_are_read()
    {
        ModelSpec model = Llama("""
            , "rope_theta": 500000.0, "rms_norm_eps": 1e-05, "hidden_act": "silu",
            "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 8192, "rope_type": "llama3"}
            """);

        Assert.Equal(500000.0, model.RopeTheta);
        Assert.Equal(1e-5, model.NormEps);
        Assert.Equal(new RopeScaling
        {
            RopeType = RopeScalingKind.Llama3,
            Factor = 8,
            LowFreqFactor = 1,
            HighFreqFactor = 4,
            OriginalMaxPositionEmbeddings = 8192,
        }, model.RopeScaling);
    }

    [Fact]
    public void Given_a_transformers_5_config_with_rope_parameters_When_imported_Then_its_theta_and_scaling_are_read()
    {
        ModelSpec plain = Llama(""", "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}""");
        ModelSpec scaled = Llama("""
            , "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
            """);

        Assert.Equal(500000.0, plain.RopeTheta);
        Assert.Null(plain.RopeScaling);
        Assert.Equal(500000.0, scaled.RopeTheta);
        Assert.Equal(8, scaled.RopeScaling!.Factor);
        var e = Assert.Throws<DescriptionException>(() => Llama(""", "rope_parameters": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0}"""));
        Assert.Contains("$.rope_parameters.rope_type", e.Message);
    }

    [Fact]
    public void Given_a_llama_config_without_the_constants_When_imported_Then_the_llama_config_defaults_apply()
    {
        ModelSpec model = Llama(", \"rope_scaling\": null");

        Assert.Equal(10000.0, model.RopeTheta);
        Assert.Equal(1e-6, model.NormEps);
        Assert.Null(model.RopeScaling);
    }

    [Fact]
    public void Given_rope_type_default_When_imported_Then_there_is_no_scaling()
    {
        Assert.Null(Llama(", \"rope_scaling\": {\"rope_type\": \"default\"}").RopeScaling);
    }

    [Theory]
    [InlineData("\"rope_type\": \"linear\", \"factor\": 2.0", "$.rope_scaling.rope_type", "\"linear\"")]
    [InlineData("\"type\": \"dynamic\", \"factor\": 2.0", "$.rope_scaling.type", "\"dynamic\"")]
    [InlineData("\"rope_type\": \"yarn\", \"factor\": 4.0", "$.rope_scaling.rope_type", "\"yarn\"")]
    [InlineData("\"factor\": 2.0", "$.rope_scaling.type", "nothing")]
    public void Given_another_rope_scaling_When_imported_Then_the_error_names_the_type(string scaling, string field, string named)
    {
        var e = Assert.Throws<DescriptionException>(() => Llama($", \"rope_scaling\": {{{scaling}}}"));

        Assert.Equal(field, e.Field);
        Assert.Contains($"{named} is not supported", e.Message);
        Assert.Contains("llama3", e.Message);
    }

    [Fact]
    public void Given_llama3_scaling_without_a_factor_When_imported_Then_the_missing_field_is_named()
    {
        var e = Assert.Throws<DescriptionException>(() => Llama("""
            , "rope_scaling": {"rope_type": "llama3", "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
            """));

        Assert.Equal("$.rope_scaling.factor", e.Field);
    }

    [Fact]
    public void Given_a_partial_config_When_its_constants_are_read_Then_only_the_constants_are_needed()
    {
        using var doc = System.Text.Json.JsonDocument.Parse("""{"model_type": "llama", "rope_theta": 500000.0}""");

        ComputeConstants c = HuggingFaceConfig.Constants(doc.RootElement, "config.json");

        Assert.Equal(new ComputeConstants(ActivationKind.Gelu, 1e-6, 500000.0, null), c);
    }
}

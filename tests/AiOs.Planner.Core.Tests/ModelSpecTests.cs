using AiOs.Planner.Descriptions;
using AiOs.Planner.Models;

namespace AiOs.Planner.Core.Tests;

public class ModelSpecTests
{
    [Theory]
    [InlineData("gpt2", 124_439_808L)]
    [InlineData("gpt2-medium", 354_823_168L)]
    [InlineData("gpt2-large", 774_030_080L)]
    [InlineData("gpt2-xl", 1_557_611_200L)]
    [InlineData("llama-2-7b", 6_738_415_616L)]
    [InlineData("llama-2-13b", 13_015_864_320L)]
    [InlineData("llama-2-70b", 68_976_648_192L)]
    [InlineData("llama-3-8b", 8_030_261_248L)]
    public void Given_a_bundled_model_When_counting_parameters_Then_the_count_matches_the_reference(string name, long expected)
    {
        var model = ModelCatalog.Default.Load(name);
        Assert.Equal(expected, model.TotalParameters);
    }

    [Fact]
    public void Given_every_bundled_model_When_loaded_Then_each_validates()
    {
        var names = ModelCatalog.Default.Names();
        Assert.Contains("gpt3-175b", names);
        Assert.Contains("zero-infinity-100t", names);
        foreach (string name in names)
            Assert.True(ModelCatalog.Default.Load(name).TotalParameters > 0, name);
    }

    [Fact]
    public void Given_the_zero_infinity_1t_shape_When_counting_Then_it_is_about_one_trillion()
    {
        var model = ModelCatalog.Default.Load("zero-infinity-1t");
        Assert.InRange(model.TotalParameters, 1.0e12, 1.02e12);
    }

    [Fact]
    public void Given_a_gpt2_huggingface_config_When_imported_Then_it_matches_the_bundled_description()
    {
        const string json = """
            {"model_type": "gpt2", "n_embd": 1600, "n_layer": 48, "n_head": 25, "n_positions": 1024, "vocab_size": 50257,
             "activation_function": "gelu_new", "resid_pdrop": 0.1, "architectures": ["GPT2LMHeadModel"]}
            """;
        var model = ModelCatalog.Parse(json, "/models/gpt2-xl/config.json");
        Assert.Equal("gpt2-xl", model.Name);
        Assert.Equal(1_557_611_200L, model.TotalParameters);
    }

    [Fact]
    public void Given_a_llama_huggingface_config_file_When_loaded_by_path_Then_the_count_is_exact()
    {
        string dir = Directory.CreateTempSubdirectory().FullName;
        string path = Path.Combine(dir, "config.json");
        File.WriteAllText(path, """
            {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
             "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "vocab_size": 128256,
             "max_position_embeddings": 8192, "rms_norm_eps": 1e-05, "tie_word_embeddings": false, "hidden_act": "silu"}
            """);
        var model = ModelCatalog.Default.Load(path);
        Assert.Equal(8_030_261_248L, model.TotalParameters);
        Assert.Equal(FfnKind.Swiglu, model.FfnKind);
    }

    [Fact]
    public void Given_an_unknown_model_name_When_loaded_Then_the_error_lists_what_exists()
    {
        var e = Assert.Throws<DescriptionException>(() => ModelCatalog.Default.Load("gpt5"));
        Assert.Contains("Unknown model 'gpt5'", e.Message);
        Assert.Contains("gpt2-xl", e.Message);
    }

    [Fact]
    public void Given_a_malformed_model_file_When_loaded_Then_the_error_names_file_line_and_field()
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "bad.json");
        File.WriteAllText(path, "{\n  \"name\": \"bad\",\n  \"vocab_size\": \"lots\"\n}");
        var e = Assert.Throws<DescriptionException>(() => ModelCatalog.Default.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("line 3", e.Message);
        Assert.Contains("vocab_size", e.Message);
    }

    [Fact]
    public void Given_invalid_field_values_When_loaded_Then_every_bad_field_is_named()
    {
        const string json = """
            {"name": "x", "vocab_size": 0, "hidden_size": 100, "num_layers": 2, "num_heads": 3, "ffn_size": 4,
             "ffn_kind": "gelu_mlp", "norm": "layernorm", "tied_embeddings": true, "positions": "learned", "max_seq_len": 8}
            """;
        var e = Assert.Throws<DescriptionException>(() => ModelCatalog.Parse(json, "x.json"));
        Assert.Contains("$.vocab_size", e.Message);
        Assert.Contains("$.hidden_size: must be a multiple of num_heads", e.Message);
    }

    [Fact]
    public void Given_a_missing_required_field_When_loaded_Then_the_field_is_named()
    {
        const string json = """{"name": "x", "vocab_size": 10}""";
        var e = Assert.Throws<DescriptionException>(() => ModelCatalog.Parse(json, "x.json"));
        Assert.Contains("x.json", e.Message);
        Assert.Contains("hidden_size", e.Message);
    }

    [Fact]
    public void Given_an_unsupported_huggingface_family_When_imported_Then_the_error_says_so()
    {
        const string json = """{"model_type": "t5", "d_model": 512}""";
        var e = Assert.Throws<DescriptionException>(() => ModelCatalog.Parse(json, "config.json"));
        Assert.Contains("'t5' is not supported", e.Message);
    }

    private const string TinyShape = """
        "name": "x", "vocab_size": 256, "hidden_size": 64, "num_layers": 2, "num_heads": 4, "ffn_size": 256,
        "tied_embeddings": true, "max_seq_len": 128
        """;

    private static ModelSpec Tiny(string kinds, string extra) =>
        ModelCatalog.Parse($"{{{TinyShape}, {kinds}{extra}}}", "x.json");

    private const string GptKinds = "\"ffn_kind\": \"gelu_mlp\", \"norm\": \"layernorm\", \"positions\": \"learned\"";
    private const string LlamaKinds = "\"ffn_kind\": \"swiglu\", \"norm\": \"rmsnorm\", \"positions\": \"rotary\"";

    [Theory]
    [InlineData("tiny-gpt")]
    [InlineData("tiny-llama")]
    public void Given_a_description_without_the_compute_constants_When_loaded_Then_they_are_what_the_engine_always_used(string name)
    {
        ModelSpec model = ModelCatalog.Default.Load(name);

        Assert.Equal(ActivationKind.Gelu, model.Activation);
        Assert.Equal(10000.0, model.RopeTheta);
        Assert.Equal(1e-5, model.NormEps);
        Assert.Null(model.RopeScaling);
    }

    [Theory]
    [InlineData("gpt2", ActivationKind.GeluTanh, 10000.0)]
    [InlineData("gpt2-xl", ActivationKind.GeluTanh, 10000.0)]
    [InlineData("llama-2-7b", ActivationKind.Gelu, 10000.0)]
    [InlineData("llama-2-70b", ActivationKind.Gelu, 10000.0)]
    [InlineData("llama-3-8b", ActivationKind.Gelu, 500000.0)]
    [InlineData("llama-3-70b", ActivationKind.Gelu, 500000.0)]
    public void Given_a_bundled_pretrained_shape_When_loaded_Then_its_constants_are_those_of_its_hugging_face_config(
        string name, ActivationKind activation, double ropeTheta)
    {
        ModelSpec model = ModelCatalog.Default.Load(name);

        Assert.Equal(activation, model.Activation);
        Assert.Equal(ropeTheta, model.RopeTheta);
        Assert.Equal(1e-5, model.NormEps);
    }

    [Fact]
    public void Given_an_unknown_activation_When_loaded_Then_the_error_names_the_field_and_the_allowed_values()
    {
        var e = Assert.Throws<DescriptionException>(() => Tiny(GptKinds, ", \"activation\": \"relu\""));

        Assert.Equal("$.activation", e.Field);
        Assert.Contains("'relu' is not one of gelu, gelu_tanh", e.Message);
    }

    [Fact]
    public void Given_bad_compute_constants_When_loaded_Then_every_bad_field_is_named()
    {
        var e = Assert.Throws<DescriptionException>(() => Tiny(LlamaKinds, """
            , "activation": "gelu_tanh", "rope_theta": 0, "norm_eps": -1e-5,
            "rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 4, "high_freq_factor": 1, "original_max_position_embeddings": 0}
            """));

        Assert.Contains("$.activation: applies to ffn_kind gelu_mlp only", e.Message);
        Assert.Contains("$.rope_theta: must be a positive number", e.Message);
        Assert.Contains("$.norm_eps: must be a small positive number", e.Message);
        Assert.Contains("$.rope_scaling.high_freq_factor: must be greater than low_freq_factor", e.Message);
        Assert.Contains("$.rope_scaling.original_max_position_embeddings: must be a positive number", e.Message);
    }

    [Fact]
    public void Given_rope_scaling_with_learned_positions_or_an_unknown_type_When_loaded_Then_the_error_says_so()
    {
        const string scaling = """
            , "rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 8192}
            """;
        var learned = Assert.Throws<DescriptionException>(() => Tiny(GptKinds, scaling));
        var linear = Assert.Throws<DescriptionException>(() => Tiny(LlamaKinds, scaling.Replace("llama3", "linear")));

        Assert.Contains("$.rope_scaling: applies to rotary positions only", learned.Message);
        Assert.Equal("$.rope_scaling.rope_type", linear.Field);
        Assert.Contains("'linear' is not one of llama3", linear.Message);
    }

    [Fact]
    public void Given_a_description_with_every_compute_constant_When_written_and_read_back_Then_it_is_equal()
    {
        ModelSpec model = Tiny(LlamaKinds, """
            , "rope_theta": 500000, "norm_eps": 1e-6,
            "rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 8192}
            """);

        string json = System.Text.Json.JsonSerializer.Serialize(model, DescriptionJson.Options);

        Assert.Contains("\"rope_type\": \"llama3\"", json);
        Assert.Contains("\"activation\": \"gelu\"", json);
        Assert.Equal(model, ModelCatalog.Parse(json, "round-trip.json"));
    }
}

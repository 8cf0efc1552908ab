using AiOs.Planner.Engine.Checkpoints;
using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Optim;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Engine.Tests;

public sealed class PretrainedWeightsTests : IDisposable
{
    private const long OriginalSeed = 7, OtherSeed = 99;
    private static readonly ModelSpec Gpt = ModelCatalog.Default.Load("tiny-gpt");
    private static readonly ModelSpec Llama = ModelCatalog.Default.Load("tiny-llama");
    private readonly string _root = Directory.CreateTempSubdirectory("aios-hf-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string WriteSingle(List<(string Name, long[] Shape, float[] Data)> tensors, string dtype = "F32", string folder = "hf")
    {
        string dir = Path.Combine(_root, folder);
        Directory.CreateDirectory(dir);
        SafeTensors.Write(Path.Combine(dir, PretrainedWeights.SingleFile), tensors, dtype: dtype);
        return dir;
    }

    private static float[][] Load(ModelSpec spec, string path)
    {
        using InitialWeights weights = InitialWeights.Open(spec, OtherSeed, path);
        return Enumerable.Range(0, spec.NumLayers + 1).Select(weights.Unit).ToArray();
    }

    /// <summary>The first step's loss of the all-in-memory reference (seed and data fixed; weights from <paramref name="initFrom"/> or the seed).</summary>
    private static double FirstLoss(ModelSpec spec, long seed, string? initFrom, TrainingSettings? settings = null)
    {
        settings ??= LayerwiseTrainerTests.Small();
        using var trainer = new ReferenceTrainer(spec, settings, LayerwiseTrainerTests.Options() with { Seed = seed, InitFrom = initFrom });
        return trainer.Step(Batches(settings)).Loss;
    }

    private static Func<int, TokenBatch> Batches(TrainingSettings settings)
    {
        var data = TokenDataset.Load(BundledText.DefaultPath);
        return micro => data.Sample(42, 0, micro, settings.MicroBatch, settings.SeqLen);
    }

    [Fact]
    public void Given_TinyGptInShardedHfGpt2LayoutUnderTransformerNames_When_LoadedIntoAModelWithAnotherSeed_Then_EveryParameterAndTheFirstLossEqualTheOriginal()
    {
        float[][] original = InitialWeights.Create(Gpt, OriginalSeed);
        string folder = Path.Combine(_root, "sharded");
        HfLayout.WriteSharded(folder, HfLayout.Gpt2(Gpt, original, prefix: "transformer."), "F32");

        float[][] loaded = Load(Gpt, folder);

        for (int u = 0; u < original.Length; u++) Assert.Equal(original[u], loaded[u]);
        double expected = FirstLoss(Gpt, OriginalSeed, null);
        Assert.Equal(expected, FirstLoss(Gpt, OtherSeed, folder), 6);
        Assert.NotEqual(expected, FirstLoss(Gpt, OtherSeed, null), 4);
    }

    [Theory]
    [InlineData("BF16")]
    [InlineData("F16")]
    public void Given_TinyGptInAHalfPrecisionFile_When_Loaded_Then_EveryParameterEqualsTheOriginalRoundedToThatType(string dtype)
    {
        float[][] original = InitialWeights.Create(Gpt, OriginalSeed);
        string folder = WriteSingle(HfLayout.Gpt2(Gpt, original), dtype);

        float[][] loaded = Load(Gpt, folder);

        for (int u = 0; u < original.Length; u++) Assert.Equal(Round(original[u], dtype), loaded[u]);
    }

    [Fact]
    public void Given_TinyLlamaInBf16HfLlamaLayout_When_Loaded_Then_ParametersEqualTheRoundedOriginalAndTheFirstLossMatches()
    {
        float[][] original = InitialWeights.Create(Llama, OriginalSeed);
        string bf16 = WriteSingle(HfLayout.Llama(Llama, original), "BF16", "llama-bf16");
        float[][] rounded = original.Select(u => Round(u, "BF16")).ToArray();
        string f32 = WriteSingle(HfLayout.Llama(Llama, rounded), "F32", "llama-f32");

        float[][] loaded = Load(Llama, bf16);

        for (int u = 0; u < original.Length; u++) Assert.Equal(rounded[u], loaded[u]);
        double fromBf16 = FirstLoss(Llama, OtherSeed, bf16);
        Assert.Equal(FirstLoss(Llama, OtherSeed, f32), fromBf16, 6);
        Assert.Equal(FirstLoss(Llama, OriginalSeed, null), fromBf16, 3);
    }

    [Fact]
    public void Given_AHandBuiltFusedConv1DAttention_When_Loaded_Then_QKVAreItsColumnRangesTransposedElementByElement()
    {
        var spec = new ModelSpec
        {
            Name = "hand", VocabSize = 8, HiddenSize = 4, NumLayers = 1, NumHeads = 2, FfnSize = 6, FfnKind = FfnKind.GeluMlp,
            Norm = NormKind.Layernorm, TiedEmbeddings = true, Positions = PositionKind.Learned, MaxSeqLen = 4, Bias = true,
        };
        var tensors = HfLayout.Gpt2(spec, InitialWeights.Create(spec, 1));
        // Distinct values: c_attn[i, c] = 100·i + c, its bias 1000 + c; c_fc[i, c] = 10·i + c.
        Replace(tensors, "h.0.attn.c_attn.weight", Enumerable.Range(0, 4 * 12).Select(n => 100f * (n / 12) + n % 12).ToArray());
        Replace(tensors, "h.0.attn.c_attn.bias", Enumerable.Range(0, 12).Select(c => 1000f + c).ToArray());
        Replace(tensors, "h.0.mlp.c_fc.weight", Enumerable.Range(0, 4 * 6).Select(n => 10f * (n / 6) + n % 6).ToArray());
        string folder = WriteSingle(tensors);

        float[] layer = Load(spec, folder)[0];

        var layout = ParameterLayout.ForLayer(spec);
        float At(string name, int row, int column) => layer[layout.Find(name)!.Offset + row * layout.Find(name)!.Shape[1] + column];
        for (int o = 0; o < 4; o++)
        {
            for (int i = 0; i < 4; i++)
            {
                Assert.Equal(100f * i + o, At("attn.q.weight", o, i));
                Assert.Equal(100f * i + 4 + o, At("attn.k.weight", o, i));
                Assert.Equal(100f * i + 8 + o, At("attn.v.weight", o, i));
            }
            Assert.Equal(1000f + o, layer[layout.Find("attn.q.bias")!.Offset + o]);
            Assert.Equal(1004f + o, layer[layout.Find("attn.k.bias")!.Offset + o]);
            Assert.Equal(1008f + o, layer[layout.Find("attn.v.bias")!.Offset + o]);
        }
        for (int o = 0; o < 6; o++)
            for (int i = 0; i < 4; i++) Assert.Equal(10f * i + o, At("mlp.fc.weight", o, i));
    }

    [Fact]
    public void Given_A2By3Matrix_When_ColumnsOneAndTwoAreTakenTransposed_Then_TheyBecomeRows()
    {
        float[] source = [1, 2, 3, 4, 5, 6];
        var ours = new float[4];

        PretrainedWeights.TakeColumnsTransposed(source, 2, 3, 1, ours);

        Assert.Equal([2f, 5f, 3f, 6f], ours);
    }

    [Fact]
    public void Given_AMissingTensor_When_Opened_Then_TheErrorNamesItAndTheModel()
    {
        var tensors = HfLayout.Gpt2(Gpt, InitialWeights.Create(Gpt, 1));
        tensors.RemoveAll(t => t.Name == "h.1.mlp.c_fc.weight");
        string folder = WriteSingle(tensors);

        var e = Assert.Throws<InvalidDataException>(() => PretrainedWeights.Open(folder, Gpt));

        Assert.Contains("tensor h.1.mlp.c_fc.weight is missing", e.Message);
        Assert.Contains("models/tiny-gpt.json", e.Message);
    }

    [Fact]
    public void Given_AWrongShape_When_Opened_Then_TheErrorGivesTheFoundAndExpectedShapes()
    {
        var tensors = HfLayout.Gpt2(Gpt, InitialWeights.Create(Gpt, 1));
        Replace(tensors, "h.0.attn.c_attn.weight", new float[64 * 128], [64, 128]);
        string folder = WriteSingle(tensors);

        var e = Assert.Throws<InvalidDataException>(() => PretrainedWeights.Open(folder, Gpt));

        Assert.Contains("h.0.attn.c_attn.weight has shape [64, 128]", e.Message);
        Assert.Contains("needs [64, 192]", e.Message);
    }

    [Fact]
    public void Given_AFileWithFewerLayers_When_Opened_Then_TheErrorComparesTheLayerCountsAndSaysToPickTheModel()
    {
        ModelSpec oneLayer = Gpt with { NumLayers = 1 };
        string folder = WriteSingle(HfLayout.Gpt2(oneLayer, InitialWeights.Create(oneLayer, 1)));

        var e = Assert.Throws<InvalidDataException>(() => PretrainedWeights.Open(folder, Gpt));

        Assert.Contains("models/tiny-gpt.json has 2 layers but", e.Message);
        Assert.Contains("has 1", e.Message);
        Assert.Contains("--model", e.Message);
    }

    [Fact]
    public void Given_AnotherVocabulary_When_Opened_Then_TheErrorNamesBothSizes()
    {
        ModelSpec bigger = Gpt with { VocabSize = 300 };
        string folder = WriteSingle(HfLayout.Gpt2(bigger, InitialWeights.Create(bigger, 1)));

        var e = Assert.Throws<InvalidDataException>(() => PretrainedWeights.Open(folder, Gpt));

        Assert.Contains("the vocabulary differs, wte.weight has 300 rows", e.Message);
        Assert.Contains("vocab_size 256", e.Message);
    }

    [Fact]
    public void Given_AnIntegerTensor_When_Opened_Then_TheErrorNamesItsDType()
    {
        var tensors = HfLayout.Gpt2(Gpt, InitialWeights.Create(Gpt, 1));
        string path = Path.Combine(_root, "int.safetensors");
        HfLayout.WriteRaw(path, tensors.Select(t => (t.Name, t.Name == "ln_f.weight" ? "I32" : "F32", t.Shape,
            System.Runtime.InteropServices.MemoryMarshal.AsBytes(t.Data.AsSpan()).ToArray())));

        var e = Assert.Throws<InvalidDataException>(() => PretrainedWeights.Open(path, Gpt));

        Assert.Contains("ln_f.weight is I32", e.Message);
        Assert.Contains("F32, F16 and BF16", e.Message);
    }

    [Fact]
    public void Given_GptWeights_When_OpenedForALlamaModel_Then_TheErrorSaysTheFamiliesDiffer()
    {
        string folder = WriteSingle(HfLayout.Gpt2(Gpt, InitialWeights.Create(Gpt, 1)));

        var e = Assert.Throws<InvalidDataException>(() => PretrainedWeights.Open(folder, Llama));

        Assert.Contains("GPT-2 weights", e.Message);
        Assert.Contains("models/tiny-llama.json", e.Message);
    }

    [Fact]
    public void Given_NotASafetensorsFile_When_Opened_Then_TheErrorSaysSo()
    {
        string path = Path.Combine(_root, "model.safetensors");
        File.WriteAllText(path, "this is a text file, not tensors");

        var e = Assert.Throws<InvalidDataException>(() => PretrainedWeights.Open(path, Gpt));

        Assert.Contains("is not a safetensors file", e.Message);
    }

    [Fact]
    public void Given_AMissingPathOrAFolderWithOnlyPytorchBin_When_Opened_Then_TheErrorNamesThePathAndTheFix()
    {
        string missing = Path.Combine(_root, "nope");
        var e = Assert.Throws<FileNotFoundException>(() => PretrainedWeights.Open(missing, Gpt));
        Assert.Contains(missing, e.Message);

        string folder = Path.Combine(_root, "bin");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "pytorch_model.bin"), "x");
        e = Assert.Throws<FileNotFoundException>(() => PretrainedWeights.Open(folder, Gpt));
        Assert.Contains(PretrainedWeights.SingleFile, e.Message);
        Assert.Contains("convert them to safetensors", e.Message);
    }

    [Fact]
    public void Given_ExtraTensorsAndGpt2Buffers_When_Opened_Then_OnlyTheUnknownOnesAreWarnedAbout()
    {
        var tensors = HfLayout.Gpt2(Gpt, InitialWeights.Create(Gpt, 1));
        tensors.Add(("score.weight", [2, 64], new float[128]));
        string folder = WriteSingle(tensors);

        using var weights = PretrainedWeights.Open(folder, Gpt);

        Assert.Equal(WeightFamily.Gpt2, weights.Family);
        string warning = Assert.Single(weights.Warnings);
        Assert.Contains("1 tensor(s)", warning);
        Assert.Contains("score.weight", warning);
        Assert.DoesNotContain("attn.bias", warning);
        Assert.DoesNotContain("lm_head", warning);
    }

    private string WithConfig(List<(string Name, long[] Shape, float[] Data)> tensors, string config)
    {
        string folder = WriteSingle(tensors);
        File.WriteAllText(Path.Combine(folder, "config.json"), config);
        return folder;
    }

    private const string Llama31Config = """
        {"model_type": "llama", "rope_theta": 500000.0, "rms_norm_eps": 1e-06,
         "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}
        """;

    [Fact]
    public void Given_ALlamaConfigWhoseConstantsDifferFromTheDescription_When_Opened_Then_EachMismatchIsWarnedWithBothValuesAndTheFix()
    {
        string folder = WithConfig(HfLayout.Llama(Llama, InitialWeights.Create(Llama, 1)), Llama31Config);

        using var weights = PretrainedWeights.Open(folder, Llama);

        Assert.Equal(WeightFamily.Llama, weights.Family);
        Assert.Equal(3, weights.Warnings.Count);
        Assert.Contains("has rms_norm_eps 0.000001 but models/tiny-llama.json has norm_eps 0.00001", weights.Warnings[0]);
        Assert.Contains("has rope_theta 500000 but models/tiny-llama.json has rope_theta 10000", weights.Warnings[1]);
        Assert.Contains("has rope_scaling llama3 (factor 8, low_freq_factor 1, high_freq_factor 4, original_max_position_embeddings 8192) but models/tiny-llama.json has rope_scaling none", weights.Warnings[2]);
        Assert.All(weights.Warnings, w => Assert.Contains($"pass --model {Path.Combine(folder, "config.json")}", w));
        Assert.All(weights.Warnings, w => Assert.Contains("or edit models/tiny-llama.json", w));
    }

    [Fact]
    public void Given_AConfigThatMatchesTheDescription_When_Opened_Then_NothingIsWarned()
    {
        string folder = WithConfig(HfLayout.Llama(Llama, InitialWeights.Create(Llama, 1)), Llama31Config);
        ModelSpec matching = Llama with
        {
            RopeTheta = 500000,
            NormEps = 1e-6,
            RopeScaling = new RopeScaling { RopeType = RopeScalingKind.Llama3, Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 8192 },
        };

        using var weights = PretrainedWeights.Open(folder, matching);

        Assert.Empty(weights.Warnings);
    }

    [Fact]
    public void Given_AGpt2ConfigWithTheTanhGelu_When_OpenedForAnExactGeluDescription_Then_TheActivationIsWarnedAbout()
    {
        var tensors = HfLayout.Gpt2(Gpt, InitialWeights.Create(Gpt, 1));
        string folder = WithConfig(tensors, """{"model_type": "gpt2", "activation_function": "gelu_new", "layer_norm_epsilon": 1e-05}""");

        using (var exact = PretrainedWeights.Open(folder, Gpt))
            Assert.Contains("has activation_function gelu_new (tanh GELU) but models/tiny-gpt.json has activation gelu", Assert.Single(exact.Warnings));
        using (var tanh = PretrainedWeights.Open(folder, Gpt with { Activation = ActivationKind.GeluTanh }))
            Assert.Empty(tanh.Warnings);
    }

    [Fact]
    public void Given_AConfigWithARopeScalingTheEngineCannotCompute_When_Opened_Then_TheWarningNamesIt()
    {
        string folder = WithConfig(HfLayout.Llama(Llama, InitialWeights.Create(Llama, 1)),
            """{"model_type": "llama", "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}""");

        using var weights = PretrainedWeights.Open(folder, Llama);

        string warning = Assert.Single(weights.Warnings);
        Assert.Contains("$.rope_scaling.rope_type: \"yarn\" is not supported", warning);
        Assert.Contains("The engine cannot compute the model", warning);
    }

    [Fact]
    public void Given_AGemmaConfigBesideLlamaNamedTensors_When_Opened_Then_TheModelTypeIsWarnedAboutFirst()
    {
        string folder = WithConfig(HfLayout.Llama(Llama, InitialWeights.Create(Llama, 1)),
            """{"model_type": "gemma", "rope_theta": 10000.0, "rms_norm_eps": 1e-05}""");

        using var weights = PretrainedWeights.Open(folder, Llama);

        Assert.Equal(WeightFamily.Llama, weights.Family);
        string warning = Assert.Single(weights.Warnings);
        Assert.Contains("says model_type gemma", warning);
        Assert.Contains("computes only gpt2, llama, mistral, qwen2 exactly", warning);
    }

    [Fact]
    public void Given_AConfigThatIsNotJson_When_Opened_Then_ItIsSaidThatNothingWasCompared()
    {
        string folder = WithConfig(HfLayout.Gpt2(Gpt, InitialWeights.Create(Gpt, 1)), "{ not json");

        using var weights = PretrainedWeights.Open(folder, Gpt);

        Assert.Contains("could not be read", Assert.Single(weights.Warnings));
    }

    public static TheoryData<OffloadTier> Placements() => new() { OffloadTier.None, OffloadTier.Cpu, OffloadTier.Nvme };

    [Theory]
    [MemberData(nameof(Placements))]
    public void Given_PretrainedWeights_When_TrainedWithParametersAndOptimizerOnATier_Then_TheFirstLossesEqualTheInMemoryRun(OffloadTier tier)
    {
        float[][] original = InitialWeights.Create(Llama, OriginalSeed);
        string folder = WriteSingle(HfLayout.Llama(Llama, original), "F32");
        TrainingSettings settings = LayerwiseTrainerTests.Small() with
        {
            ParamOffload = tier,
            OptimizerOffload = tier,
            NvmePath = Path.Combine(_root, "nvme"),
        };
        EngineOptions options = LayerwiseTrainerTests.Options() with { Seed = OtherSeed, InitFrom = folder };
        var data = TokenDataset.Load(BundledText.DefaultPath);
        var losses = new double[3];
        var expected = new double[3];

        using (ITrainer trainer = Trainers.Create(Llama, settings, options))
            for (int s = 0; s < losses.Length; s++) losses[s] = trainer.Step(m => data.Sample(42, s, m, settings.MicroBatch, settings.SeqLen)).Loss;
        using (var reference = new ReferenceTrainer(Llama, settings, LayerwiseTrainerTests.Options() with { Seed = OriginalSeed }))
            for (int s = 0; s < expected.Length; s++) expected[s] = reference.Step(m => data.Sample(42, s, m, settings.MicroBatch, settings.SeqLen)).Loss;

        for (int s = 0; s < losses.Length; s++) Assert.Equal(expected[s], losses[s], 5);
    }

    private static void Replace(List<(string Name, long[] Shape, float[] Data)> tensors, string name, float[] data, long[]? shape = null)
    {
        int i = tensors.FindIndex(t => t.Name == name);
        tensors[i] = (name, shape ?? tensors[i].Shape, data);
    }

    private static float[] Round(float[] values, string dtype)
    {
        var bytes = new byte[2 * values.Length];
        var widened = new float[values.Length];
        if (dtype == "BF16")
        {
            PrecisionCast.ToBf16(values, bytes);
            SpanMath.AddBf16(widened, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(bytes), overwrite: true);
        }
        else
        {
            for (int i = 0; i < values.Length; i++) widened[i] = (float)(Half)values[i];
        }
        return widened;
    }
}

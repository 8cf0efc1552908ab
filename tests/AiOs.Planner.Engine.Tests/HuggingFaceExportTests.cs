using System.Text.Json;
using AiOs.Planner.Engine.Checkpoints;
using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Models;

namespace AiOs.Planner.Engine.Tests;

public sealed class HuggingFaceExportTests : IDisposable
{
    private const long OriginalSeed = 7, OtherSeed = 99;
    private static readonly ModelSpec Gpt = ModelCatalog.Default.Load("tiny-gpt");
    private static readonly ModelSpec Llama = ModelCatalog.Default.Load("tiny-llama");
    private readonly string _root = Directory.CreateTempSubdirectory("aios-export-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static ModelSpec Spec(string name) => name == "tiny-gpt" ? Gpt : Llama;

    /// <summary>A checkpoint of <paramref name="units"/> (zero moments) under a run folder, as <c>aios train --save-every</c> writes it.</summary>
    private string SaveRun(ModelSpec spec, float[][] units, string run = "run")
    {
        string runDir = Path.Combine(_root, run);
        Checkpoint.Save(Path.Combine(runDir, "checkpoints"), spec, 3, OriginalSeed,
            u => new UnitState(units[u], new float[units[u].Length], new float[units[u].Length]));
        return runDir;
    }

    private static double FirstLoss(ModelSpec spec, long seed, string? initFrom)
    {
        var settings = LayerwiseTrainerTests.Small();
        using var trainer = new ReferenceTrainer(spec, settings, LayerwiseTrainerTests.Options() with { Seed = seed, InitFrom = initFrom });
        var data = TokenDataset.Load(BundledText.DefaultPath);
        return trainer.Step(micro => data.Sample(42, 0, micro, settings.MicroBatch, settings.SeqLen)).Loss;
    }

    private static void AssertSameTensors(List<(string Name, long[] Shape, float[] Data)> expected, string file)
    {
        var written = SafeTensors.Read(file);
        Assert.Equal(expected.Select(t => t.Name).Order(StringComparer.Ordinal), written.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, shape, data) in expected)
        {
            Assert.Equal(shape, written[name].Shape);
            Assert.Equal(data, written[name].Data);
        }
    }

    [Fact]
    public void Given_ATinyGptCheckpoint_When_Exported_Then_ItsTensorsAreThoseAnIndependentGpt2WriterLaysOutUnderTransformerNames()
    {
        float[][] units = InitialWeights.Create(Gpt, OriginalSeed);
        string run = SaveRun(Gpt, units);

        HfExportResult result = HuggingFaceExport.Export(run, Gpt, Path.Combine(_root, "hf"));

        // GPT2LMHeadModel saves neither the attention-mask buffers nor the head tied to wte.
        var expected = HfLayout.Gpt2(Gpt, units, prefix: "transformer.").Where(t => !t.Name.EndsWith(".attn.bias", StringComparison.Ordinal) && t.Name != "lm_head.weight").ToList();
        AssertSameTensors(expected, Path.Combine(result.Folder, PretrainedWeights.SingleFile));
        Assert.Equal((WeightFamily.Gpt2, 3, expected.Count), (result.Family, result.Step, result.Tensors));
        Assert.Empty(result.Warnings);
    }

    [Fact]
    public void Given_ATinyLlamaCheckpoint_When_Exported_Then_ItsTensorsAreThoseAnIndependentLlamaWriterLaysOut()
    {
        float[][] units = InitialWeights.Create(Llama, OriginalSeed);
        string run = SaveRun(Llama, units);

        HfExportResult result = HuggingFaceExport.Export(run, Llama, Path.Combine(_root, "hf"));

        AssertSameTensors(HfLayout.Llama(Llama, units), Path.Combine(result.Folder, PretrainedWeights.SingleFile));
        Assert.Equal(WeightFamily.Llama, result.Family);
    }

    [Theory]
    [InlineData("tiny-gpt")]
    [InlineData("tiny-llama")]
    public void Given_AnExportedCheckpoint_When_LoadedWithInitFrom_Then_EveryWeightAndTheFirstLossEqualTheCheckpointsWithoutWarnings(string name)
    {
        ModelSpec spec = Spec(name);
        float[][] units = InitialWeights.Create(spec, OriginalSeed);
        string run = SaveRun(spec, units);
        string checkpoint = HuggingFaceExport.ResolveCheckpoint(run);

        string folder = HuggingFaceExport.Export(run, spec, Path.Combine(_root, "hf")).Folder;

        using (InitialWeights loaded = InitialWeights.Open(spec, OtherSeed, folder))
        {
            for (int u = 0; u <= spec.NumLayers; u++) Assert.Equal(units[u], loaded.Unit(u));
            // The config.json beside the weights states the description's constants: nothing differs, nothing is unused.
            Assert.Empty(loaded.Pretrained!.Warnings);
        }
        double fromExport = FirstLoss(spec, OtherSeed, folder);
        Assert.Equal(FirstLoss(spec, OtherSeed, checkpoint), fromExport, 6);
        Assert.Equal(FirstLoss(spec, OriginalSeed, null), fromExport, 6);
    }

    public static TheoryData<string> Variants() => ["tiny-gpt", "gpt-tanh-untied", "tiny-llama", "llama3-scaled-tied"];

    private static ModelSpec Variant(string name) => name switch
    {
        "gpt-tanh-untied" => Gpt with { Name = name, Activation = ActivationKind.GeluTanh, NormEps = 1e-6, TiedEmbeddings = false, Dropout = 0.1 },
        "llama3-scaled-tied" => Llama with
        {
            Name = name, RopeTheta = 500000, NormEps = 1e-6, TiedEmbeddings = true,
            RopeScaling = new RopeScaling { RopeType = RopeScalingKind.Llama3, Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 64 },
        },
        _ => Spec(name),
    };

    [Theory]
    [MemberData(nameof(Variants))]
    public void Given_ADescription_When_ItsConfigIsWrittenAndReadBack_Then_TheShapeAndConstantsAreTheSame(string name)
    {
        ModelSpec spec = Variant(name);
        var (family, _) = PretrainedNames.FamilyFor(spec);

        string json = HuggingFaceConfigWriter.For(spec, family!.Value).ToJsonString();

        using JsonDocument doc = JsonDocument.Parse(json);
        ModelSpec back = HuggingFaceConfig.Convert(doc.RootElement, "config.json", spec.Name);
        // GPT-2 configs have no kv-head count (always all heads): compare the count, not whether it was written.
        Assert.Equal(spec with { Description = null, NumKvHeads = spec.KvHeads }, back with { Description = null, NumKvHeads = back.KvHeads });
        Assert.Equal(family == WeightFamily.Gpt2 ? "gpt2" : "llama", doc.RootElement.GetProperty("model_type").GetString());
    }

    [Fact]
    public void Given_AnOutFolderThatHoldsAFile_When_Exported_Then_ItIsRefusedAndTheFileIsUntouched()
    {
        string run = SaveRun(Gpt, InitialWeights.Create(Gpt, OriginalSeed));
        string target = Path.Combine(_root, "busy");
        Directory.CreateDirectory(target);
        File.WriteAllText(Path.Combine(target, "keep.txt"), "mine");

        var e = Assert.Throws<ArgumentException>(() => HuggingFaceExport.Export(run, Gpt, target));

        Assert.Contains("already holds files", e.Message);
        Assert.Equal(["keep.txt"], Directory.GetFileSystemEntries(target).Select(Path.GetFileName));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(target, "keep.txt")));
    }

    [Fact]
    public void Given_AnEmptyOutFolder_When_Exported_Then_ItIsFilledAndNoPartialFolderRemains()
    {
        string run = SaveRun(Gpt, InitialWeights.Create(Gpt, OriginalSeed));
        string target = Path.Combine(_root, "empty");
        Directory.CreateDirectory(target);

        HuggingFaceExport.Export(run, Gpt, target);

        Assert.Equal(["config.json", "model.safetensors"], Directory.GetFiles(target).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.DoesNotContain(Directory.GetDirectories(_root), d => d.Contains(".partial", StringComparison.Ordinal));
    }

    [Fact]
    public void Given_ARunFolderWithoutCheckpoints_When_Exported_Then_TheErrorSaysToTrainWithSaveEvery()
    {
        string run = Path.Combine(_root, "bare");
        Directory.CreateDirectory(run);

        var e = Assert.Throws<InvalidDataException>(() => HuggingFaceExport.Export(run, Gpt, Path.Combine(_root, "hf")));

        Assert.Contains("--save-every", e.Message);
        Assert.False(Directory.Exists(Path.Combine(_root, "hf")));
    }

    [Fact]
    public void Given_ACheckpointWhoseWeightsChangedAfterSaving_When_Exported_Then_ItIsReportedCorruptedAndNothingIsWritten()
    {
        string run = SaveRun(Gpt, InitialWeights.Create(Gpt, OriginalSeed));
        string weights = Path.Combine(HuggingFaceExport.ResolveCheckpoint(run), Checkpoint.ModelFile);
        byte[] bytes = File.ReadAllBytes(weights);
        bytes[^1] ^= 0x40;
        File.WriteAllBytes(weights, bytes);

        var e = Assert.Throws<InvalidDataException>(() => HuggingFaceExport.Export(run, Gpt, Path.Combine(_root, "hf")));

        Assert.Contains("corrupted", e.Message);
        Assert.Equal(["run"], Directory.GetFileSystemEntries(_root).Select(Path.GetFileName));
    }

    [Fact]
    public void Given_ATinyGptCheckpoint_When_ExportedAsTinyLlama_Then_TheMismatchIsNamedAndNothingIsWritten()
    {
        string run = SaveRun(Gpt, InitialWeights.Create(Gpt, OriginalSeed));

        var e = Assert.Throws<InvalidDataException>(() => HuggingFaceExport.Export(run, Llama, Path.Combine(_root, "hf")));

        Assert.Contains("tiny-llama", e.Message);
        Assert.Equal(["run"], Directory.GetFileSystemEntries(_root).Select(Path.GetFileName));
    }

    [Fact]
    public void Given_AGpt2ShapedModelWithGroupedQueryAttention_When_Exported_Then_ItIsRefusedAsHuggingFaceGpt2HasNone()
    {
        ModelSpec gqa = Gpt with { Name = "gpt-gqa", NumKvHeads = 2 };
        string run = SaveRun(gqa, InitialWeights.Create(gqa, OriginalSeed));

        var e = Assert.Throws<NotSupportedException>(() => HuggingFaceExport.Export(run, gqa, Path.Combine(_root, "hf")));

        Assert.Contains("grouped-query", e.Message);
    }

    [Fact]
    public void Given_ACheckpointSavedForAnotherModelName_When_ExportedWithFittingShapes_Then_ItIsExportedWithAWarning()
    {
        string run = SaveRun(Gpt, InitialWeights.Create(Gpt, OriginalSeed));

        HfExportResult result = HuggingFaceExport.Export(run, Gpt with { Name = "renamed" }, Path.Combine(_root, "hf"));

        Assert.Contains(result.Warnings, w => w.Contains("'tiny-gpt'", StringComparison.Ordinal) && w.Contains("'renamed'", StringComparison.Ordinal));
    }

    [Fact]
    public void Given_A2By2LinearWeight_When_PlacedAsColumnsOneAndTwoOfA2By3Conv1D_Then_TakingThemBackGivesItAgain()
    {
        float[] ours = [1, 2, 3, 4];
        var conv = new float[6];

        HuggingFaceExport.PutColumnsTransposed(ours, 2, 3, 1, conv);

        Assert.Equal([0f, 1f, 3f, 0f, 2f, 4f], conv);
        var back = new float[4];
        PretrainedWeights.TakeColumnsTransposed(conv, 2, 3, 1, back);
        Assert.Equal(ours, back);
    }
}

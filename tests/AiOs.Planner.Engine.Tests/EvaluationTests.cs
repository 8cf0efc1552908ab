using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Checkpoints;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Tests;

public sealed class EvaluationTests : IDisposable
{
    private static readonly ModelSpec Gpt = ModelCatalog.Default.Load("tiny-gpt");
    private static readonly ModelSpec Llama = ModelCatalog.Default.Load("tiny-llama");
    private readonly string _root = Directory.CreateTempSubdirectory("aios-eval-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>Two rows of 12 ids from a fixed pseudo-random sequence.</summary>
    private static long[][] Ids(int rows = 2, int seq = 12) =>
        Enumerable.Range(0, rows).Select(r => Enumerable.Range(0, seq).Select(i => (long)((r * 97 + i * 31 + 7) % 256)).ToArray()).ToArray();

    private static EvaluationResult Run(ModelSpec spec, long[][] ids, Precision precision = Precision.Fp32) =>
        Evaluation.Run(new EvaluationRequest { Model = spec, InputIds = ids, Seed = 42, Precision = precision });

    [Theory]
    [InlineData("tiny-gpt")]
    [InlineData("tiny-llama")]
    public void Given_ABatch_When_Evaluated_Then_TheLossIsTheFirstTrainingStepsLossOnTheShiftedBatch(string name)
    {
        ModelSpec spec = name == "tiny-gpt" ? Gpt : Llama;
        long[][] ids = Ids();

        EvaluationResult result = Run(spec, ids);

        var settings = LayerwiseTrainerTests.Small() with { GradAccumulation = 1, SeqLen = 11 };
        using var trainer = new ReferenceTrainer(spec, settings, LayerwiseTrainerTests.Options() with { Seed = 42 });
        Tensor all = tensor(ids.SelectMany(r => r).ToArray(), [2, 12], ScalarType.Int64);
        double trained = trainer.Step(_ => new TokenBatch(all.narrow(1, 0, 11).clone(), all.narrow(1, 1, 11).clone())).Loss;
        Assert.Equal(trained, result.Loss!.Value, 5);
        Assert.Equal(22, result.LossTokens);
    }

    [Fact]
    public void Given_TheLogits_When_TheShiftedCrossEntropyIsRecomputedFromThemHere_Then_ItEqualsTheReportedLoss()
    {
        long[][] ids = Ids();

        EvaluationResult r = Run(Llama, ids);

        // transformers with labels=input_ids: position t of row b predicts ids[b][t + 1]; logits are [batch, seq, vocab].
        double sum = 0;
        for (int b = 0; b < r.Batch; b++)
            for (int t = 0; t < r.SeqLen - 1; t++)
            {
                var row = r.Logits.AsSpan((b * r.SeqLen + t) * r.Vocab, r.Vocab);
                double max = double.NegativeInfinity;
                foreach (float v in row) max = Math.Max(max, v);
                double z = 0;
                foreach (float v in row) z += Math.Exp(v - max);
                sum += max + Math.Log(z) - row[(int)ids[b][t + 1]];
            }
        Assert.Equal(sum / r.LossTokens, r.Loss!.Value, 5);
    }

    [Fact]
    public void Given_TwoRows_When_EvaluatedTogetherAndAlone_Then_TheBatchLogitsAreEachRowsLogitsInOrder()
    {
        long[][] ids = Ids();

        EvaluationResult both = Run(Gpt, ids);

        float[] first = Run(Gpt, [ids[0]]).Logits, second = Run(Gpt, [ids[1]]).Logits;
        float[] joined = [.. first, .. second];
        Assert.Equal(joined.Length, both.Logits.Length);
        for (int i = 0; i < joined.Length; i++) Assert.Equal(joined[i], both.Logits[i], 5);
    }

    [Fact]
    public void Given_Bf16_When_Evaluated_Then_TheLogitsAreCloseToButNotExactlyFp32s()
    {
        long[][] ids = Ids();

        EvaluationResult fp32 = Run(Llama, ids), bf16 = Run(Llama, ids, Precision.Bf16);

        double maxDiff = fp32.Logits.Zip(bf16.Logits, (a, b) => Math.Abs(a - b)).Max();
        Assert.InRange(maxDiff, 1e-6, 5e-2);
        Assert.Equal(fp32.Loss!.Value, bf16.Loss!.Value, 1);
    }

    [Fact]
    public void Given_OneTokenRows_When_Evaluated_Then_ThereAreLogitsButNoLoss()
    {
        EvaluationResult r = Run(Gpt, [[5], [6]]);

        Assert.Null(r.Loss);
        Assert.Equal(2 * 256, r.Logits.Length);
    }

    [Theory]
    [InlineData("""{"input_ids": [[1, 2, 3], [4, 5]]}""", "input_ids[1] has 2 ids but row 0 has 3")]
    [InlineData("""{"input_ids": [[1, 2, 256]]}""", "input_ids[0][2] is 256, outside the vocabulary of tiny-gpt (0 … 255)")]
    [InlineData("""{"input_ids": [[1, -1]]}""", "input_ids[0][1] is -1")]
    [InlineData("""{"input_ids": [[1, 2.5]]}""", "input_ids[0][1] is 2.5, not a whole number")]
    [InlineData("""{"input_ids": [1, 2]}""", "input_ids[0] is number, not a list")]
    [InlineData("""{"ids": [[1, 2]]}""", "expected an object with \"input_ids\"")]
    [InlineData("""{"input_ids": []}""", "input_ids is empty")]
    [InlineData("""{"input_ids": [[1, 2]""", "is not valid JSON")]
    public void Given_ABadTokenFile_When_Read_Then_TheErrorNamesTheFileAndTheProblem(string json, string expected)
    {
        string path = Path.Combine(_root, "tokens.json");
        File.WriteAllText(path, json);

        var e = Assert.Throws<InvalidDataException>(() => Evaluation.ReadIds(path, Gpt));

        Assert.Contains(path, e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Given_RowsLongerThanTheContext_When_Read_Then_TheErrorNamesMaxSeqLen()
    {
        string path = Path.Combine(_root, "long.json");
        File.WriteAllText(path, $$"""{"input_ids": [[{{string.Join(", ", Enumerable.Repeat(1, 129))}}]]}""");

        var e = Assert.Throws<InvalidDataException>(() => Evaluation.ReadIds(path, Gpt));

        Assert.Contains("max_seq_len 128", e.Message);
    }

    [Fact]
    public void Given_AResult_When_Written_Then_TheLogitsFileHoldsOneF32TensorOfTheBatchShapeAndTheSummarySitsBesideIt()
    {
        var request = new EvaluationRequest { Model = Gpt, InputIds = Ids(), Seed = 42 };
        EvaluationResult r = Evaluation.Run(request);
        string path = Path.Combine(_root, "out", "logits.safetensors");

        Evaluation.Write(path, r, request);

        var tensors = SafeTensors.Read(path);
        Assert.Equal(["logits"], tensors.Keys);
        Assert.Equal([2L, 12, 256], tensors["logits"].Shape);
        Assert.Equal(r.Logits, tensors["logits"].Data);
        using var summary = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(_root, "out", "logits.json")));
        Assert.Equal(r.Loss!.Value, summary.RootElement.GetProperty("loss").GetDouble(), 12);
        Assert.Equal(["logits.json", "logits.safetensors"], Directory.GetFiles(Path.Combine(_root, "out")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Given_AnOutPathEndingInJson_When_ItsSummaryPathIsAsked_Then_ItIsRefusedBecauseTheSummaryWouldReplaceIt()
    {
        var e = Assert.Throws<ArgumentException>(() => Evaluation.SummaryPath("logits.json"));

        Assert.Contains("logits.safetensors", e.Message);
    }
}

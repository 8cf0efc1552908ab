using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Engine.Checkpoints;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Execution;

/// <summary>What one evaluation pass computes and on what.</summary>
public sealed record EvaluationRequest
{
    /// <summary>The model description.</summary>
    public required ModelSpec Model { get; init; }
    /// <summary>Token ids [batch][seq], rectangular, each below the vocabulary size.</summary>
    public required long[][] InputIds { get; init; }
    /// <summary>Pretrained weights or a checkpoint (as <c>--init-from</c> takes), or null for the seeded initialisation.</summary>
    public string? InitFrom { get; init; }
    /// <summary>Seed of the initial weights when <see cref="InitFrom"/> is null.</summary>
    public long Seed { get; init; } = 1234;
    /// <summary><c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>.</summary>
    public string Device { get; init; } = "cpu";
    /// <summary>The precision the weights are held and computed in (bf16 rounds the fp32 weights to nearest even, as PyTorch's cast does).</summary>
    public Precision Precision { get; init; } = Precision.Fp32;
}

/// <summary>The logits and loss of one forward pass.</summary>
/// <param name="Logits">fp32 logits [batch, seq, vocab], row-major (computed in the request's precision, then widened).</param>
/// <param name="Batch">Sequences.</param>
/// <param name="SeqLen">Tokens per sequence.</param>
/// <param name="Vocab">Vocabulary size.</param>
/// <param name="Loss">Mean next-token cross-entropy (fp32) over positions 0 … seq−2 predicting 1 … seq−1, or null for one-token sequences.</param>
/// <param name="LossTokens">Positions the loss averages over: batch · (seq − 1).</param>
/// <param name="Warnings">The pretrained weights' warnings (unused tensors, differing config constants).</param>
public sealed record EvaluationResult(float[] Logits, int Batch, int SeqLen, int Vocab, double? Loss, long LossTokens, IReadOnlyList<string> Warnings);

/// <summary>
/// One forward pass of the training model (<see cref="GptModel"/>, in eval mode: no dropout) on a fixed batch: the
/// logits and the next-token loss as <c>transformers</c> computes it with <c>labels=input_ids</c> (logits shifted one
/// left, labels one right, mean over every remaining position), through the same loss code a training step uses.
/// Used to check the engine against a reference implementation on the same weights.
/// </summary>
public static class Evaluation
{
    /// <summary>Runs <paramref name="request"/>.</summary>
    /// <exception cref="ArgumentException">The device is unknown.</exception>
    /// <exception cref="FileNotFoundException">The weights do not exist.</exception>
    /// <exception cref="InvalidDataException">The ids or the weights do not fit the model.</exception>
    public static EvaluationResult Run(EvaluationRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        ModelSpec spec = request.Model;
        var (batch, seq) = CheckIds(request.InputIds, spec, "the input ids");
        if (request.Device != "cpu" && !request.Device.StartsWith("cuda", StringComparison.Ordinal))
            throw new ArgumentException($"--device '{request.Device}' is unknown: use cpu, cuda or cuda:N.", nameof(request));
        using InitialWeights initial = InitialWeights.Open(spec, request.Seed, request.InitFrom);
        Native.TorchRuntime.EnsureReady(Native.TorchRuntime.DeviceTypeOf(request.Device));
        using var model = new GptModel(spec, EngineSettings.DType(request.Precision), new Device(request.Device));
        model.eval();
        int unit = 0;
        foreach (float[] values in initial.InOrder(model.UnitCount)) model.Unit(unit++).StoreFloats(0, values);

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Tensor tokens = tensor(request.InputIds.SelectMany(r => r).ToArray(), [batch, seq], ScalarType.Int64).to(model.Outer.Parameters.Flat.device);
        Tensor hidden = model.Hidden(tokens, null);
        float[] logits = model.Outer.Logits(hidden).to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
        double? loss = null;
        if (seq > 1)
        {
            // Position t predicts token t + 1: the last position has no label, the first token is never a label.
            loss = model.Outer.Loss(hidden.narrow(1, 0, seq - 1), tokens.narrow(1, 1, seq - 1), 1).item<float>();
        }
        return new EvaluationResult(logits, batch, seq, spec.VocabSize, loss, (long)batch * (seq - 1), initial.Pretrained?.Warnings ?? []);
    }

    /// <summary>
    /// Reads token ids from a JSON file <c>{"input_ids": [[…], …]}</c> (as a <c>transformers</c> tokenizer returns them)
    /// and checks them against <paramref name="spec"/>.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is malformed or its ids do not fit the model; the message names the row and the fix.</exception>
    public static long[][] ReadIds(string path, ModelSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (!File.Exists(path)) throw new FileNotFoundException($"Token file '{path}' does not exist: write {{\"input_ids\": [[id, …], …]}} there.", path);
        long[][] ids;
        try
        {
            using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(path));
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("input_ids", out JsonElement rows) || rows.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException($"{path}: expected an object with \"input_ids\": a list of rows of token ids, such as {{\"input_ids\": [[464, 2068], [383, 3290]]}}.");
            ids = rows.EnumerateArray().Select((row, r) => row.ValueKind == JsonValueKind.Array
                ? row.EnumerateArray().Select((id, i) => id.ValueKind == JsonValueKind.Number && id.TryGetInt64(out long v) ? v
                    : throw new InvalidDataException($"{path}: input_ids[{r}][{i}] is {id.GetRawText()}, not a whole number.")).ToArray()
                : throw new InvalidDataException($"{path}: input_ids[{r}] is {row.ValueKind.ToString().ToLowerInvariant()}, not a list of token ids.")).ToArray();
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not valid JSON ({e.Message}).", e);
        }
        CheckIds(ids, spec, path);
        return ids;
    }

    /// <summary>
    /// Writes the logits to <paramref name="path"/> (safetensors, one F32 tensor <c>logits</c> [batch, seq, vocab]) and a
    /// summary beside it (<see cref="SummaryPath"/>: loss, shape, settings), each written whole under a temporary name and
    /// then renamed, so a reader never sees half a file.
    /// </summary>
    public static void Write(string path, EvaluationResult result, EvaluationRequest request)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(request);
        string full = Path.GetFullPath(path), summary = SummaryPath(full);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string partial = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.partial");
        try
        {
            var meta = new Dictionary<string, string> { ["format"] = "pt", ["model"] = request.Model.Name, ["precision"] = Choice.NameOf(request.Precision) };
            SafeTensors.Write(partial, [("logits", [result.Batch, result.SeqLen, result.Vocab], result.Logits)], meta);
            File.Move(partial, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(partial)) File.Delete(partial);
        }
        var doc = new JsonObject
        {
            ["model"] = request.Model.Name,
            ["init_from"] = request.InitFrom is { } from ? Path.GetFullPath(from) : null,
            ["seed"] = request.InitFrom is null ? request.Seed : null,
            ["device"] = request.Device,
            ["precision"] = Choice.NameOf(request.Precision),
            ["batch"] = result.Batch,
            ["seq_len"] = result.SeqLen,
            ["vocab_size"] = result.Vocab,
            ["loss"] = result.Loss,
            ["loss_tokens"] = result.LossTokens,
            ["logits_file"] = Path.GetFileName(full),
        };
        AtomicFile.WriteAllText(summary, doc.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>The summary written beside a logits file: its name with the extension <c>.json</c> (<c>logits.safetensors</c> → <c>logits.json</c>).</summary>
    /// <exception cref="ArgumentException">The logits file itself ends in <c>.json</c>.</exception>
    public static string SummaryPath(string logitsPath)
    {
        if (logitsPath.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"--out {logitsPath} ends in .json, but the logits are a safetensors file and the .json beside it holds the loss: give a name such as logits.safetensors.");
        return Path.ChangeExtension(logitsPath, ".json");
    }

    /// <summary>Batch and sequence length of <paramref name="ids"/>, checked rectangular, non-empty and within the model's vocabulary and context.</summary>
    private static (int Batch, int Seq) CheckIds(long[][] ids, ModelSpec spec, string source)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (ids.Length == 0 || ids[0].Length == 0)
            throw new InvalidDataException($"{source}: input_ids is empty; give at least one row of at least one token id.");
        int seq = ids[0].Length;
        for (int r = 0; r < ids.Length; r++)
        {
            if (ids[r].Length != seq)
                throw new InvalidDataException($"{source}: input_ids[{r}] has {ids[r].Length} ids but row 0 has {seq}; every row must have the same length (pad or cut them).");
            for (int i = 0; i < seq; i++)
                if (ids[r][i] < 0 || ids[r][i] >= spec.VocabSize)
                    throw new InvalidDataException($"{source}: input_ids[{r}][{i}] is {ids[r][i].ToString(CultureInfo.InvariantCulture)}, outside the vocabulary of {spec.Name} (0 … {spec.VocabSize - 1}).");
        }
        if (seq > spec.MaxSeqLen)
            throw new InvalidDataException($"{source}: rows of {seq} ids exceed {spec.Name}'s max_seq_len {spec.MaxSeqLen}; cut them.");
        return (ids.Length, seq);
    }
}

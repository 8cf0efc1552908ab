using AiOs.Planner.Engine.Model;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Data;

/// <summary>One micro-batch: input ids and next-token targets, both int64 [batch, seq] on the CPU.</summary>
public sealed class TokenBatch : IDisposable
{
    /// <summary>Wraps two tensors; the batch owns them.</summary>
    public TokenBatch(Tensor inputs, Tensor targets)
    {
        Inputs = inputs;
        Targets = targets;
    }

    public Tensor Inputs { get; }
    public Tensor Targets { get; }

    /// <summary>Tokens in the batch.</summary>
    public long Tokens => Inputs.numel();

    public void Dispose()
    {
        Inputs.Dispose();
        Targets.Dispose();
    }
}

/// <summary>How text becomes token ids.</summary>
public enum Tokenization
{
    /// <summary>Each byte is a token (vocabulary 256); any model with vocab_size ≥ 256 can read it.</summary>
    Bytes,
    /// <summary>GPT-2's byte-pair encoding (vocabulary 50,257) through Microsoft.ML.Tokenizers and its bundled GPT-2 data.</summary>
    Gpt2,
}

/// <summary>
/// A tokenised corpus with deterministic sampling: the window for (step, micro-batch, row) depends only
/// on the seed and those counters, so two runs, or a resumed run, see the same data in the same order.
/// </summary>
public sealed class TokenDataset
{
    private readonly int[] _tokens;

    /// <summary>Wraps token ids below <paramref name="vocabSize"/>; <paramref name="source"/> names them in messages.</summary>
    public TokenDataset(int[] tokens, int vocabSize, string source)
    {
        _tokens = tokens;
        VocabSize = vocabSize;
        Source = source;
    }

    /// <summary>Reads and tokenises a text file. A missing or too-short file is a clear error.</summary>
    public static TokenDataset Load(string path, Tokenization tokenization = Tokenization.Bytes)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Dataset file '{path}' does not exist.", path);
        TokenDataset data = tokenization switch
        {
            Tokenization.Bytes => new TokenDataset(File.ReadAllBytes(path).Select(b => (int)b).ToArray(), 256, path),
            Tokenization.Gpt2 => new TokenDataset(
                Microsoft.ML.Tokenizers.TiktokenTokenizer.CreateForModel("gpt2").EncodeToIds(File.ReadAllText(path)).ToArray(), 50257, path),
            _ => throw new ArgumentOutOfRangeException(nameof(tokenization)),
        };
        if (data.Length < 2) throw new InvalidDataException($"Dataset file '{path}' holds {data.Length} tokens; at least two are needed.");
        return data;
    }

    /// <summary>Where the tokens came from.</summary>
    public string Source { get; }

    /// <summary>Corpus size in tokens.</summary>
    public long Length => _tokens.Length;

    /// <summary>The vocabulary a model needs to read this dataset.</summary>
    public int VocabSize { get; }

    /// <summary>The micro-batch for (<paramref name="step"/>, <paramref name="micro"/>): <paramref name="batch"/> windows of <paramref name="seqLen"/>+1 tokens.</summary>
    public TokenBatch Sample(long seed, long step, int micro, int batch, int seqLen)
    {
        if (seqLen + 1 > _tokens.Length)
            throw new InvalidOperationException($"Sequence length {seqLen} needs at least {seqLen + 1} tokens; {Source} has {_tokens.Length}.");
        var inputs = new long[batch * seqLen];
        var targets = new long[batch * seqLen];
        for (int row = 0; row < batch; row++)
        {
            var rng = SplitMix64.For(seed, step, micro, row);
            long start = rng.NextLong(_tokens.Length - seqLen);
            for (int t = 0; t < seqLen; t++)
            {
                inputs[row * seqLen + t] = _tokens[start + t];
                targets[row * seqLen + t] = _tokens[start + t + 1];
            }
        }
        return new TokenBatch(tensor(inputs, [batch, seqLen]), tensor(targets, [batch, seqLen]));
    }
}

/// <summary>The small public-domain text bundled beside the tool, so a default run needs no download.</summary>
public static class BundledText
{
    /// <summary>Path of <c>data/harbour.txt</c> next to the running program.</summary>
    public static string DefaultPath => Path.Combine(AppContext.BaseDirectory, "data", "harbour.txt");
}

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

/// <summary>
/// A byte-level corpus (vocabulary 256: each byte is a token) with deterministic sampling: the window
/// for (step, micro-batch, row) depends only on the seed and those counters, so two runs, or a
/// resumed run, see the same data in the same order.
/// </summary>
public sealed class ByteDataset
{
    private readonly byte[] _bytes;

    /// <summary>Wraps <paramref name="bytes"/>; <paramref name="source"/> names it in messages.</summary>
    public ByteDataset(byte[] bytes, string source)
    {
        _bytes = bytes;
        Source = source;
    }

    /// <summary>Reads a text file. A missing or empty file is a clear error.</summary>
    public static ByteDataset Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Dataset file '{path}' does not exist.", path);
        byte[] bytes = File.ReadAllBytes(path);
        if (bytes.Length < 2) throw new InvalidDataException($"Dataset file '{path}' holds {bytes.Length} bytes; at least two are needed.");
        return new ByteDataset(bytes, path);
    }

    /// <summary>Where the bytes came from.</summary>
    public string Source { get; }

    /// <summary>Corpus size in tokens (bytes).</summary>
    public long Length => _bytes.Length;

    /// <summary>The vocabulary a model needs to read this dataset.</summary>
    public const int VocabSize = 256;

    /// <summary>The micro-batch for (<paramref name="step"/>, <paramref name="micro"/>): <paramref name="batch"/> windows of <paramref name="seqLen"/>+1 bytes.</summary>
    public TokenBatch Sample(long seed, long step, int micro, int batch, int seqLen)
    {
        if (seqLen + 1 > _bytes.Length)
            throw new InvalidOperationException($"Sequence length {seqLen} needs at least {seqLen + 1} bytes; {Source} has {_bytes.Length}.");
        var inputs = new long[batch * seqLen];
        var targets = new long[batch * seqLen];
        for (int row = 0; row < batch; row++)
        {
            var rng = SplitMix64.For(seed, step, micro, row);
            long start = rng.NextLong(_bytes.Length - seqLen);
            for (int t = 0; t < seqLen; t++)
            {
                inputs[row * seqLen + t] = _bytes[start + t];
                targets[row * seqLen + t] = _bytes[start + t + 1];
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

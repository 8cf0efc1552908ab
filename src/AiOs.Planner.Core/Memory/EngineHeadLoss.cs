using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Memory;

/// <summary>
/// The engine's fused head and loss (Engine's <c>ChunkedHeadLoss</c>): the final norm's output goes through the head
/// a chunk of tokens at a time, each chunk's loss and its gradients for the normed states and the head weight are taken
/// at once, and the chunk's logits are freed, so the logits never exist for the whole micro-batch. One definition of the
/// chunk size, of when the engine fuses (<see cref="IsFused"/>) and of the bytes alive at the loss, used by the engine
/// and by the <c>aios</c> executor's device plan.
/// </summary>
public static class EngineHeadLoss
{
    /// <summary>
    /// Bytes of one chunk's fp32 logits at most (256 MiB). Small against any GPU the engine plans for (gpt2: 1,280
    /// tokens a chunk, Llama 3's 128,256 vocabulary: 512), yet the head's matmul of a chunk is still thousands of output
    /// tiles (1,280 × 50,257 is ~2,000 tiles of 128 × 256), so it keeps a GPU's tensor cores as busy as one matmul of
    /// the whole micro-batch does; a smaller budget would only add launches.
    /// </summary>
    public const long ChunkLogitsBytes = 256 * Bytes.MiBValue;

    /// <summary>Chunks are a multiple of 128 tokens (whole matmul tiles), and never fewer.</summary>
    public const int TokenMultiple = 128;

    /// <summary>
    /// Tokens per chunk for a vocabulary of <paramref name="vocab"/>: as many whole multiples of
    /// <see cref="TokenMultiple"/> as fit <see cref="ChunkLogitsBytes"/> of fp32 logits, at least one multiple.
    /// </summary>
    public static long ChunkTokens(long vocab)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vocab);
        return Math.Max(TokenMultiple, ChunkLogitsBytes / (4 * vocab) / TokenMultiple * TokenMultiple);
    }

    /// <summary>The head's matmuls run on a vocabulary padded to a multiple of this (outside fp16): aligned rows for the tensor cores.</summary>
    public const int VocabMultiple = 64;

    /// <summary><paramref name="vocab"/> rounded up to <see cref="VocabMultiple"/> (gpt2's 50,257 → 50,304).</summary>
    public static long PaddedVocab(long vocab) => (vocab + VocabMultiple - 1) / VocabMultiple * VocabMultiple;

    /// <summary>
    /// The vocabulary the head's matmuls run on in <paramref name="precision"/>, fused or not: <see cref="PaddedVocab"/>,
    /// except under fp16, whose fused head sums the weight's gradient in fp32 from the unpadded gradient.
    /// </summary>
    public static long MatmulVocab(long vocab, Precision precision) => precision == Precision.Fp16 ? vocab : PaddedVocab(vocab);

    /// <summary>Bytes of an element of the normed states' gradient the loss keeps: fp32 under fp16 (unscaled values would underflow), else the training precision.</summary>
    public static int NormedGradientBytes(Precision precision) => precision == Precision.Fp16 ? 4 : ParamBytes(precision);

    /// <summary>
    /// Whether the engine fuses the head and loss for <paramref name="tokens"/> tokens of a micro-batch: exactly when that
    /// lowers the bytes alive at the loss (<see cref="FusedBytes"/> below <see cref="UnfusedBytes"/>). The fused head
    /// keeps the head weight's gradient (V·h) from the loss to backward, which a micro-batch of few tokens and a large
    /// vocabulary × hidden does not win back on logits; the same shapes decide on every rank.
    /// </summary>
    public static bool IsFused(long tokens, long vocab, long hidden, Precision precision) =>
        FusedBytes(tokens, vocab, hidden, precision) < UnfusedBytes(tokens, vocab, hidden, precision);

    /// <summary>Device bytes alive at the loss for <paramref name="tokens"/> tokens of a micro-batch of <paramref name="m"/>: the fused head's or the unfused one's, whichever the engine runs (<see cref="IsFused"/>).</summary>
    public static Bytes PeakBytes(ModelSpec m, TrainingSettings s, long tokens) =>
        Bytes.Min(FusedBytes(tokens, m.VocabSize, m.HiddenSize, s.Precision), UnfusedBytes(tokens, m.VocabSize, m.HiddenSize, s.Precision));

    /// <summary>Bytes of an element of the head weight's gradient the fused loss sums: bf16 under bf16 (the matmul sums in place), else fp32.</summary>
    public static int HeadGradientBytes(Precision precision) => precision == Precision.Bf16 ? 2 : 4;

    /// <summary>
    /// The fused head's bytes alive at the loss (the peak of a micro-batch's forward end): the embedding output and the
    /// final norm's input and output (3·a·h per token); the gradient of the normed states (<see cref="NormedGradientBytes"/>·h
    /// per token); the head weight's gradient summed over the chunks (<see cref="HeadGradientBytes"/>·V·h, beside the head
    /// gradient the outer block already counts: autograd adds it there in backward); and the larger of one chunk's working
    /// set and what the end of the loss adds. A chunk holds its logits in fp32 and, in mixed precision, one copy in the
    /// training precision (the matmul's output, then the gradient cast back for the backward matmuls): (4 + a)·V per
    /// token; under fp16 also its normed states in fp32 (4·h per token) for the weight's fp32 product. The end adds, under
    /// fp16 only, the fp32 copy of the head weight the surrogate's inner product takes (4·V·h). Outside fp16, V is the
    /// padded vocabulary (<see cref="PaddedVocab"/>) and the padded copy of the head weight (a·V·h) is kept too.
    /// </summary>
    public static Bytes FusedBytes(long tokens, long vocab, long hidden, Precision precision)
    {
        long a = ParamBytes(precision), h = hidden, v = vocab, vh = checked(v * h);
        long rows = Math.Min(tokens, ChunkTokens(v));
        // Outside fp16 the matmuls use the head padded to PaddedVocab rows: its copy and the padded gradient of the weight.
        long p = MatmulVocab(v, precision);
        long padding = p == v ? 0 : checked(a * p * h);
        long kept = checked(tokens * h * (3 * a + NormedGradientBytes(precision)) + HeadGradientBytes(precision) * p * h + padding);
        long chunk = precision switch
        {
            Precision.Fp32 => rows * p * 4,
            Precision.Bf16 => rows * p * (4 + a),
            _ => rows * (v * (4 + a) + 4 * h),
        };
        long end = precision == Precision.Fp16 ? 4 * vh : 0;
        return new Bytes(checked(kept + Math.Max(chunk, end)));
    }

    /// <summary>
    /// The unfused head's bytes alive at the loss: the embedding output and the final norm's input and output (3·a·h per
    /// token), the logits of the whole micro-batch in the training precision, their fp32 copy and the fp32 log-softmax
    /// that cross-entropy keeps ((a + 4 + 4)·V per token; fp32: (4 + 4)·V). Outside fp16 the training-precision logits
    /// are padded wide (<see cref="PaddedVocab"/>) and the padded copy of the head weight (a·V·h) is kept.
    /// </summary>
    public static Bytes UnfusedBytes(long tokens, long vocab, long hidden, Precision precision)
    {
        long a = ParamBytes(precision);
        // Outside fp16 the matmul's output is padded wide and its padded weight copy is kept for backward.
        long p = MatmulVocab(vocab, precision);
        long padding = p == vocab ? 0 : checked(a * p * hidden);
        long logits = precision == Precision.Fp32 ? 4 * p + 4 * vocab : a * p + 8 * vocab;
        return new Bytes(checked(tokens * (3 * a * hidden + logits) + padding));
    }

    private static int ParamBytes(Precision precision) => precision == Precision.Fp32 ? 4 : 2;
}

using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Memory;

/// <summary>
/// The engine's fused head and loss (Engine's <c>ChunkedHeadLoss</c>): the final norm's output goes through the head
/// a chunk of tokens at a time, each chunk's loss and its gradients for the normed states and the head weight are taken
/// at once, and the chunk's logits are freed, so the logits never exist for the whole micro-batch. One definition of the
/// chunk size and of the bytes alive at the loss, used by the engine and by the <c>aios</c> executor's device plan.
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

    /// <summary>Bytes of an element of the normed states' gradient the loss keeps: fp32 under fp16 (unscaled values would underflow), else the training precision.</summary>
    public static int NormedGradientBytes(TrainingSettings s) => s.Precision == Precision.Fp16 ? 4 : s.ParamBytes;

    /// <summary>
    /// Device bytes alive at the loss for <paramref name="tokens"/> tokens of one micro-batch (the peak of its forward
    /// end): the embedding output and the final norm's input and output (3·a·h per token); the gradient of the normed
    /// states (<see cref="NormedGradientBytes"/>·h per token); the head weight's gradient accumulated in fp32 (4·V·h,
    /// beside the head gradient the outer block already counts); and the larger of one chunk's working set and what
    /// the end of the loss adds. A chunk holds its logits in fp32 and, in mixed precision, one copy in the training
    /// precision (the matmul's output, then the gradient cast back for the backward matmuls): (4 + a)·V per token, and
    /// under bf16 its head-weight gradient before it is added into the fp32 sum (2·V·h). The end adds the bf16 copy of
    /// that sum (bf16: 2·V·h) or the fp32 copy of the fp16 head weight (fp16: 4·V·h).
    /// </summary>
    public static Bytes PeakBytes(ModelSpec m, TrainingSettings s, long tokens)
    {
        long a = s.ParamBytes, h = m.HiddenSize, v = m.VocabSize, vh = v * h;
        long rows = Math.Min(tokens, ChunkTokens(v));
        long kept = checked(tokens * h * (3 * a + NormedGradientBytes(s)) + 4 * vh);
        long chunk = checked(rows * v * (4 + (s.IsMixedPrecision ? a : 0)) + (s.Precision == Precision.Bf16 ? 2 * vh : 0));
        long end = s.Precision switch { Precision.Bf16 => 2 * vh, Precision.Fp16 => 4 * vh, _ => 0 };
        return new Bytes(kept + Math.Max(chunk, end));
    }
}

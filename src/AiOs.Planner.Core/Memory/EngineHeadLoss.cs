using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Memory;

/// <summary>
/// The engine's fused head and loss (Engine's <c>ChunkedHeadLoss</c>): the final norm's output goes through the head
/// a chunk of tokens at a time, each chunk's loss and its gradients for the normed states and the head weight are taken
/// at once, and the chunk's logits are freed, so the logits never exist for the whole micro-batch. One definition of the
/// chunk size, of which head the engine runs (<see cref="Resolve"/>, from <c>--head-loss</c> and the device plan) and of
/// the bytes alive at the loss with either head, used by the engine, the <c>aios</c> executor's device plan and the step program.
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
    /// Whether the fused head lowers the bytes alive at the loss for <paramref name="tokens"/> tokens of a micro-batch
    /// (<see cref="FusedBytes"/> below <see cref="UnfusedBytes"/>): the fused head keeps the head weight's gradient (V·h)
    /// from the loss to backward, which a micro-batch of few tokens and a large vocabulary × hidden does not win back on
    /// logits. What <see cref="HeadLoss.Auto"/> falls back to where the unfused head does not fit, or where no device
    /// budget is known (a CPU run, a GPU without a profile).
    /// </summary>
    /// <remarks>
    /// Compared with the unfused loss's forward (<see cref="UnfusedForwardBytes"/>), as before its backward was priced
    /// (2026-12-05), so a run without a device budget keeps the head it ran (and its losses): with the backward, tiny-gpt
    /// at 64 tokens in fp32 would move to the fused head. The fused head saves at least as much against the backward.
    /// </remarks>
    public static bool FusingSavesBytes(long tokens, long vocab, long hidden, Precision precision, bool kernel = false) =>
        FusedBytes(tokens, vocab, hidden, precision, kernel) < UnfusedForwardBytes(tokens, vocab, hidden, precision);

    /// <summary>
    /// The head the engine runs for <paramref name="s"/> on <paramref name="hw"/> (its GPU held to
    /// <paramref name="gpuMemoryLimit"/> when given): <see cref="HeadLoss.Fused"/> or <see cref="HeadLoss.Unfused"/>, never
    /// <see cref="HeadLoss.Auto"/>. The one rule the memory plan, the step program and <c>aios train</c> share; see
    /// <see cref="Choose"/>. A forced head is kept; DeepSpeed's program has no fused head (unfused).
    /// </summary>
    public static HeadLoss Resolve(ModelSpec m, HardwareProfile hw, TrainingSettings s, Bytes? gpuMemoryLimit = null)
    {
        ArgumentNullException.ThrowIfNull(hw);
        return Choose(m, hw, s, DeviceBudget(hw, gpuMemoryLimit));
    }

    /// <summary><paramref name="s"/> with its head resolved (<see cref="Resolve"/>): what a plan shows and what <c>aios train</c> hands the engine.</summary>
    public static TrainingSettings Resolved(ModelSpec m, HardwareProfile hw, TrainingSettings s, Bytes? gpuMemoryLimit = null) =>
        s with { HeadLoss = Resolve(m, hw, s, gpuMemoryLimit) };

    /// <summary>The device memory the head is chosen against: the GPU's (held to <paramref name="gpuMemoryLimit"/>); null without a GPU.</summary>
    public static Bytes? DeviceBudget(HardwareProfile hw, Bytes? gpuMemoryLimit = null)
    {
        ArgumentNullException.ThrowIfNull(hw);
        if (!hw.HasGpu) return null;
        Bytes card = hw.Gpu!.Memory;
        return gpuMemoryLimit is { } limit && limit < card ? limit : card;
    }

    /// <summary>
    /// The head for <paramref name="s"/> against <paramref name="deviceBudget"/> bytes of device memory (null: unknown).
    /// A forced head (<c>--head-loss fused|unfused</c>) is kept. <see cref="HeadLoss.Auto"/>: unfused where the engine's
    /// device plan with the unfused head (<see cref="EngineMemory.DevicePeak"/>: items, CUDA context and allocator slack,
    /// what the planner's feasibility check compares with the card) fits the budget, since it is the faster head where
    /// memory is plentiful (gpt2 mb 8 on an H100: 36.3 against 45.1 ms); else the fused head where it lowers the bytes
    /// (<see cref="FusingSavesBytes"/>), else unfused. Without a budget, the byte rule alone. Each head's peak is computed
    /// with that head, so the choice does not depend on itself.
    /// </summary>
    public static HeadLoss Choose(ModelSpec m, HardwareProfile hw, TrainingSettings s, Bytes? deviceBudget)
    {
        ArgumentNullException.ThrowIfNull(m);
        ArgumentNullException.ThrowIfNull(s);
        if (s.Executor != ExecutorKind.Aios) return HeadLoss.Unfused;
        if (s.HeadLoss != HeadLoss.Auto) return s.HeadLoss;
        // With its kernel the fused head is the faster (H200, 2026-12-06: gpt2 and gpt2-medium at micro-batch 8, 3.8 ms less
        // per step than the unfused head) and the smaller: it runs wherever it fits.
        if (deviceBudget is { } fits && UsesKernel(hw.HasGpu, s.Precision) && EngineMemory.DevicePeak(m, hw, s, fused: true) <= fits) return HeadLoss.Fused;
        if (deviceBudget is { } budget && EngineMemory.DevicePeak(m, hw, s, fused: false) <= budget) return HeadLoss.Unfused;
        long tokens = (long)s.MicroBatch * s.SeqLen;
        return FusingSavesBytes(tokens, m.VocabSize, m.HiddenSize, s.Precision, UsesKernel(hw.HasGpu, s.Precision)) ? HeadLoss.Fused : HeadLoss.Unfused;
    }

    /// <summary>
    /// Tokens per chunk of the fused head on the tensor ops where the plan priced its kernel (the engine found none: no NVRTC,
    /// or its self-check failed): in bf16 the tensor ops hold (4 + a)·P bytes per token of a chunk against the kernel's a·P,
    /// so a chunk a/(4 + a) as long stays within the plan's bytes (slower, never larger). In fp32 both hold 4·P.
    /// </summary>
    public static long TensorOpsChunkTokens(long kernelChunkTokens, Precision precision)
    {
        if (precision != Precision.Bf16) return kernelChunkTokens;
        long a = ParamBytes(precision);
        return Math.Max(TokenMultiple, kernelChunkTokens * a / (4 + a) / TokenMultiple * TokenMultiple);
    }

    /// <summary>
    /// The head a caller without a device budget runs (the engine's probes, evaluation, the reference trainer, tests):
    /// a forced head as given, <see cref="HeadLoss.Auto"/> by <see cref="FusingSavesBytes"/>, as <see cref="Choose"/> does without a budget.
    /// </summary>
    public static bool IsFused(HeadLoss head, long tokens, long vocab, long hidden, Precision precision) => head switch
    {
        HeadLoss.Fused => true,
        HeadLoss.Unfused => false,
        _ => FusingSavesBytes(tokens, vocab, hidden, precision),
    };

    /// <summary>
    /// Why <paramref name="s"/> cannot have the head it asks for, naming the flag; null when it can. Only the bundled
    /// engine has a fused head: DeepSpeed's program computes the whole micro-batch's logits.
    /// </summary>
    public static string? Problem(TrainingSettings s)
    {
        ArgumentNullException.ThrowIfNull(s);
        return s.HeadLoss == HeadLoss.Fused && s.Executor != ExecutorKind.Aios
            ? $"--head-loss fused: the fused head and loss is the aios engine's; --executor {ExecutorJsonConverter.Name(s.Executor)} computes the whole micro-batch's logits. Use --executor aios or leave --head-loss out"
            : null;
    }

    /// <summary>
    /// Whether the engine's fused head runs its loss as one kernel over each chunk's logits (Engine's <c>CrossEntropyKernel</c>):
    /// on a GPU, in bf16 or fp32 (fp16 keeps the tensor ops, which scale the gradient after the cast).
    /// </summary>
    public static bool UsesKernel(bool gpu, Precision precision) => gpu && precision != Precision.Fp16;

    /// <summary>
    /// Device bytes alive at the loss for <paramref name="tokens"/> tokens of a micro-batch of <paramref name="m"/>, through the
    /// fused head (with its kernel where <paramref name="gpu"/>, <see cref="UsesKernel"/>) or the unfused one.
    /// </summary>
    public static Bytes PeakBytes(ModelSpec m, TrainingSettings s, long tokens, bool fused, bool gpu = false) =>
        fused ? FusedBytes(tokens, m.VocabSize, m.HiddenSize, s.Precision, UsesKernel(gpu, s.Precision)) : UnfusedBytes(tokens, m.VocabSize, m.HiddenSize, s.Precision);

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
    /// padded vocabulary (<see cref="PaddedVocab"/>) and the padded copy of the head weight (a·V·h) is kept too. With the
    /// kernel (<paramref name="kernel"/>) a chunk keeps only its logits in the training precision, a·P per token.
    /// </summary>
    public static Bytes FusedBytes(long tokens, long vocab, long hidden, Precision precision, bool kernel = false)
    {
        long a = ParamBytes(precision), h = hidden, v = vocab, vh = checked(v * h);
        long rows = Math.Min(tokens, ChunkTokens(v));
        // Outside fp16 the matmuls use the head padded to PaddedVocab rows: its copy and the padded gradient of the weight.
        long p = MatmulVocab(v, precision);
        long padding = p == v ? 0 : checked(a * p * h);
        long kept = checked(tokens * h * (3 * a + NormedGradientBytes(precision)) + HeadGradientBytes(precision) * p * h + padding);
        // With the kernel a chunk holds its logits alone (overwritten by the gradient in place) and one fp32 loss per row.
        long chunk = kernel ? rows * (p * a + 4) : precision switch
        {
            Precision.Fp32 => rows * p * 4,
            Precision.Bf16 => rows * p * (4 + a),
            _ => rows * (v * (4 + a) + 4 * h),
        };
        long end = precision == Precision.Fp16 ? 4 * vh : 0;
        return new Bytes(checked(kept + Math.Max(chunk, end)));
    }

    /// <summary>
    /// The unfused head's bytes at its peak (OuterBlock's unchunked loss, then its backward): the embedding output and the
    /// final norm's input and output (3·a·h per token), the padded copy of the head weight outside fp16 (a·P·h, kept for
    /// backward), and per token the larger of the loss's forward and backward (<see cref="UnfusedLogitsBytesPerToken"/>).
    /// </summary>
    public static Bytes UnfusedBytes(long tokens, long vocab, long hidden, Precision precision)
    {
        long a = ParamBytes(precision);
        // Outside fp16 the matmul's output is padded wide and its padded weight copy is kept for backward.
        long p = MatmulVocab(vocab, precision);
        long padding = p == vocab ? 0 : checked(a * p * hidden);
        return new Bytes(checked(tokens * (3 * a * hidden + UnfusedLogitsBytesPerToken(vocab, precision)) + padding));
    }

    /// <summary>
    /// The unfused head's bytes at the end of its loss's forward, as priced before 2026-12-05: the states (3·a·h per token),
    /// the logits (a·P), their fp32 copy and the fp32 log-softmax (8·V; fp32: 4·P + 4·V) and the padded weight copy. Only
    /// <see cref="FusingSavesBytes"/> uses it; the plan prices <see cref="UnfusedBytes"/>.
    /// </summary>
    public static Bytes UnfusedForwardBytes(long tokens, long vocab, long hidden, Precision precision)
    {
        long a = ParamBytes(precision);
        long p = MatmulVocab(vocab, precision);
        long padding = p == vocab ? 0 : checked(a * p * hidden);
        long logits = precision == Precision.Fp32 ? 4 * p + 4 * vocab : a * p + 8 * vocab;
        return new Bytes(checked(tokens * (3 * a * hidden + logits) + padding));
    }

    /// <summary>
    /// Bytes per token of the unfused loss at its peak, the larger of its forward and its backward. Forward (inside the
    /// loss): the logits from the matmul (a·P, P the padded vocabulary), the fp32 copy <c>cross_entropy</c> reads (4·V; in
    /// fp32 no cast is made, but with padding the narrowed logits are not contiguous and log-softmax copies them) and the
    /// fp32 log-softmax (4·V). When the loss returns only the log-softmax stays (nll_loss and log-softmax's backward keep
    /// it). Backward: nll_loss's gradient (4·V) and log-softmax's own gradient (4·V) beside that log-softmax (4·V), 12·V
    /// in every precision, before the cast back and the matmul's gradients (smaller: the first two are freed by then). So
    /// the backward is the peak except in fp32 with padding (4·P + 8·V). Until 2026-12-05 only the forward was priced,
    /// (4·V − a·P)·T under the backward for bf16 (0.77 GiB for gpt2 at 8,192 tokens; the offloaded gpt2-xl run under
    /// 11 GB measured 8.35 GiB against 7.58 planned).
    /// </summary>
    public static long UnfusedLogitsBytesPerToken(long vocab, Precision precision)
    {
        long a = ParamBytes(precision), p = MatmulVocab(vocab, precision), v = vocab;
        long forward = precision == Precision.Fp32 ? 4 * p + (p == v ? 4 * v : 8 * v) : a * p + 8 * v;
        long backward = 12 * v;
        return Math.Max(forward, backward);
    }

    private static int ParamBytes(Precision precision) => precision == Precision.Fp32 ? 4 : 2;
}

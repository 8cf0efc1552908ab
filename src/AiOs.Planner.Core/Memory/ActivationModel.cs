using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Memory;

/// <summary>
/// Bytes that autograd keeps for backward, per token, counted tensor by tensor for the reference
/// implementations (Hugging Face GPT-2 and Llama layers, scaled-dot-product attention so no attention
/// matrix is stored). With ZeRO stage <c>none</c> and bf16/fp16 this is PyTorch autocast: the residual
/// stream stays fp32 and autocast runs <c>pow</c>/<c>tanh</c> and norms in fp32. Under DeepSpeed (any ZeRO
/// stage) the model itself is bf16/fp16, so every saved tensor is half precision.
/// </summary>
public static class ActivationModel
{
    /// <summary>Saved bytes per token for one transformer layer without checkpointing.</summary>
    public static double LayerBytesPerToken(ModelSpec m, TrainingSettings s)
    {
        var (a, r, u) = ElementSizes(s);
        double h = m.HiddenSize, f = m.FfnSize, kv = m.KvDim;

        double attention =
            Norm(m, r, u) +        // input of the first norm
            a * h +                // input of the Q/K/V projection (autocast keeps its own bf16 copy)
            a * (h + 2 * kv) +     // Q, K, V, kept by attention
            AttentionOutputKept(s) * a * h + // attention output, kept by SDPA
            a * h;                 // heads merged (a contiguous copy), kept by the output projection
        double ffn = Norm(m, r, u) + a * h + m.FfnKind switch
        {
            // fc output (GELU input); tanh(...) and 1 + tanh(...) in the upcast type; 0.5·x; fc2 input.
            FfnKind.GeluMlp => a * f + 2 * u * f + a * f + a * f,
            // gate (SiLU input), SiLU output, up projection, their product (down-projection input).
            FfnKind.Swiglu => 4 * a * f,
            _ => throw new InvalidOperationException($"Unknown FFN kind {m.FfnKind}."),
        };
        double dropoutMasks = m.Dropout > 0 ? 2 * h : 0; // one byte per element after attention and after the MLP
        return attention + ffn + dropoutMasks + EagerAttentionBytesPerToken(m, s);
    }

    /// <summary>
    /// What eager attention (<see cref="TrainingSettings.EagerAttention"/>; Megatron-LM v1.1.5's ParallelSelfAttention with its
    /// default unfused fp16 softmax) keeps per token beyond a fused kernel, each heads × seq elements: the softmax output, and
    /// under dropout its one-byte mask and its output (the input of the matmul with V). The causal mask is applied in place
    /// (<c>masked_fill_</c>, which keeps only the boolean mask), so the raw scores are not kept for backward.
    /// </summary>
    public static double EagerAttentionBytesPerToken(ModelSpec m, TrainingSettings s)
    {
        if (!s.EagerAttention) return 0;
        double a = ElementSizes(s).Activation;
        double perElement = a + (m.Dropout > 0 ? 1 + a : 0);
        return perElement * m.NumHeads * (double)s.SeqLen;
    }

    /// <summary>
    /// Score-sized bytes alive at once inside one layer's recompute and backward beyond what it keeps (<see cref="EagerAttentionBytesPerToken"/>),
    /// per heads × seq elements per token; a fused kernel works in tiles and holds none. Hidden-sized gradients are in the slack.
    /// </summary>
    /// <remarks>
    /// Megatron-LM v1.1.5's eager attention has three such moments. (1) Forward: the raw scores, a local of the attention forward,
    /// beside everything kept, until it returns. (2) Backward of the matmul with V and of dropout: one gradient beside what is still
    /// kept (each gradient made as the one before it is freed). (3) Backward of the causal mask: <c>masked_fill_</c> ran in place on
    /// a view of the <c>baddbmm</c> output, so autograd's <c>CopySlices</c> copies the incoming gradient into the base's layout,
    /// clones the view's slice for the mask's backward and gets the masked result back — four score matrices at once, when every
    /// kept one (softmax output, dropout mask and output) has been released by the softmax and dropout backward. The largest of the
    /// three, less what is kept, is the transient.
    /// </remarks>
    public static double BackwardTransientBytesPerToken(ModelSpec m, TrainingSettings s)
    {
        if (!s.EagerAttention) return 0;
        double a = ElementSizes(s).Activation, scores = m.NumHeads * (double)s.SeqLen;
        double kept = EagerAttentionBytesPerToken(m, s) / scores;
        double besideKept = kept + a, maskBackward = 4 * a;
        return (Math.Max(besideKept, maskBackward) - kept) * scores;
    }

    /// <summary>
    /// Whether the attention output (heads × head size per token) is kept apart from its merged copy: SDPA keeps its output for
    /// backward; Megatron-LM's eager attention does not (the matmul with V keeps its inputs, and the permuted contiguous copy the
    /// output projection keeps is counted as the merged heads), so the output is freed once the copy is made.
    /// </summary>
    private static double AttentionOutputKept(TrainingSettings s) => s.EagerAttention ? 0 : 1;

    /// <summary>Bytes per token kept at each layer boundary when checkpointing: the layer's input.</summary>
    public static double CheckpointBytesPerToken(ModelSpec m, TrainingSettings s) => ElementSizes(s).Residual * m.HiddenSize;

    /// <summary>
    /// Layers whose checkpoints sit on the device at once under checkpointing: every layer's, or with
    /// <c>cpu_checkpointing</c> (<see cref="TrainingSettings.ActivationOffload"/> cpu) two — the one being copied out
    /// after its forward and the one brought back for its recompute — the rest wait in host RAM.
    /// </summary>
    public static int CheckpointLayersOnDevice(ModelSpec m, TrainingSettings s) =>
        s.ActivationOffload == OffloadTier.Cpu && s.ActivationCheckpointing ? Math.Min(2, m.NumLayers) : m.NumLayers;

    /// <summary>Megatron-LM's <c>--make-vocab-size-divisible-by</c> default: the logits (and embedding) are this much wider, rounded up.</summary>
    public const int MegatronVocabMultiple = 128;

    /// <summary>
    /// Bytes per token for the embedding output, the final norm, the output projection and the loss.
    /// Hugging Face's loss keeps low-precision logits, an fp32 upcast, the shifted copy and log-softmax; Megatron-LM's
    /// (<see cref="TrainingSettings.VocabParallelCrossEntropy"/>) see <see cref="LogitsBytesPerToken"/>.
    /// </summary>
    public static double HeadBytesPerToken(ModelSpec m, TrainingSettings s)
    {
        var (a, r, u) = ElementSizes(s);
        double h = m.HiddenSize;
        double embeddingDropout = m.Dropout > 0 ? h : 0;
        return r * h + embeddingDropout + Norm(m, r, u) + a * h + LogitsBytesPerToken(m, s);
    }

    /// <summary>
    /// Bytes per token of the logits and the loss at their peak. Hugging Face: the logits, an fp32 upcast, the shifted copy and
    /// the log-softmax. Megatron-LM v1.1.5 (<c>gpt2_model.py</c>, <c>mpu/cross_entropy.py</c>): the low-precision logits and the
    /// fp32 copy <c>output.float()</c> makes, which the loss turns into the softmax in place and keeps (in fp32 training the copy
    /// is the logits themselves), over the padded vocabulary; in backward the softmax becomes the gradient in place and one
    /// low-precision gradient is made from it, the same bytes.
    /// </summary>
    public static double LogitsBytesPerToken(ModelSpec m, TrainingSettings s)
    {
        if (!s.VocabParallelCrossEntropy)
            return (s.IsMixedPrecision ? 2 + 4 + 4 + 4 : 4 + 4 + 4) * (double)m.VocabSize;
        double padded = (m.VocabSize + MegatronVocabMultiple - 1) / MegatronVocabMultiple * (double)MegatronVocabMultiple;
        return (s.IsMixedPrecision ? ElementSizes(s).Activation + 4 : 4) * padded;
    }

    private static double Norm(ModelSpec m, double r, double u) =>
        // RMSNorm (Hugging Face) upcasts its input and keeps the fp32 normalised value as well.
        m.Norm == NormKind.Rmsnorm ? r * m.HiddenSize + 2 * u * m.HiddenSize : r * m.HiddenSize;

    /// <summary>Bytes per element of: saved activations, the residual stream, and ops autocast runs in fp32.</summary>
    private static (double Activation, double Residual, double Upcast) ElementSizes(TrainingSettings s)
    {
        if (!s.IsMixedPrecision) return (4, 4, 4);
        return s.ZeroStage == ZeroStage.None ? (2, 4, 4) : (2, 2, 2);
    }
}

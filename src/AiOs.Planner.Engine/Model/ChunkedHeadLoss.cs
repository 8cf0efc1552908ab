using AiOs.Planner.Memory;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace AiOs.Planner.Engine.Model;

/// <summary>
/// The head's matmul fused with cross-entropy, a chunk of tokens at a time, so the logits never exist for the whole
/// micro-batch (the rule for the chunk size is <see cref="Memory.EngineHeadLoss.ChunkTokens"/>). The loss is terminal,
/// so its gradient can be taken in forward: for each chunk, dlogits = (softmax − one-hot) / (tokens · divisor), from
/// which d(normed) = dlogits · W and d(W) += dlogitsᵀ · normed follow; then the chunk's logits are freed.
/// </summary>
/// <remarks>
/// Autograd gets the precomputed gradients through a surrogate: loss + (A − A.detach()) with A = ⟨normed, d(normed)⟩
/// + ⟨W, d(W)⟩ (d(·) detached constants). A − A.detach() is exactly 0 for finite A (x − x = 0 in floating point), so
/// the value is the loss to the bit; its gradient w.r.t. normed is g · d(normed) and w.r.t. W is g · d(W), g the
/// upstream gradient (1, or the fp16 loss scale when a trainer back-propagates loss · scale), exactly what autograd of
/// the unfused head would deliver. The weight's gradient then adds into the token embedding's when tied, as before.
/// <para>Numerics against the unfused path (linear in the training precision, upcast, <c>cross_entropy</c>):
/// the logits are the same matmul per row, the loss is logsumexp − logit[target] in fp32, and the gradient is cast to
/// the training precision before the backward matmuls, as autograd casts it. Under fp16 the gradient is cast before
/// the 1 / (tokens · divisor) factor (it would underflow: the unfused path relies on the loss scale there) and that
/// factor is applied in fp32 after the matmul; the head weight's gradient is accumulated in fp32 from the fp32
/// gradient, so it never overflows fp16 partial sums. Under bf16 the weight's gradient is summed in bf16 by the matmul
/// (fp32 inside each chunk's product, one rounding per chunk where the unfused head rounds once): an fp32 sum would keep
/// 4·V·h bytes from the loss to backward (2 GiB for Llama 3 8B), twice what the weight's gradient itself takes.</para>
/// </remarks>
internal static class ChunkedHeadLoss
{
    /// <summary>Targets with this id add nothing to the loss or its gradient (F.cross_entropy's default ignore_index).</summary>
    public const long IgnoreIndex = -100;

    /// <summary>Mean cross-entropy of <paramref name="normed"/> [.., hidden] through <paramref name="head"/> [vocab, hidden] against <paramref name="targets"/>, divided by <paramref name="divisor"/>.</summary>
    /// <param name="normed">The final norm's output.</param>
    /// <param name="head">The head weight (the token embedding when tied).</param>
    /// <param name="targets">Token ids, one per row of <paramref name="normed"/>.</param>
    /// <param name="divisor">The accumulation count.</param>
    /// <param name="chunkTokens">Rows per chunk.</param>
    public static Tensor Loss(Tensor normed, Tensor head, Tensor targets, double divisor, long chunkTokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(chunkTokens);
        using var scope = NewDisposeScope();
        long hidden = normed.shape[^1], vocab = head.shape[0];
        Tensor rows = normed.reshape(-1, hidden), labels = targets.reshape(-1);
        long n = rows.shape[0];
        if (labels.shape[0] != n) throw new ArgumentException($"{labels.shape[0]} targets for {n} positions.", nameof(targets));
        bool gradRows = is_grad_enabled() && rows.requires_grad, gradHead = is_grad_enabled() && head.requires_grad;
        ScalarType dtype = normed.dtype;
        bool fp16 = dtype == ScalarType.Float16;

        // Scalars held by this frame across the calls (Native.KeptScalars says why).
        using Scalar one = 1, zero = 0, by = divisor, ignored = IgnoreIndex;
        Tensor valid = labels.ne(ignored);
        Tensor scale = valid.sum().to(ScalarType.Float32).clamp_min(one).mul(by).reciprocal(); // 1 / (tokens · divisor), on the device: no sync; no valid token gives zero gradients, not inf × 0
        Tensor lossSum = zeros(1, ScalarType.Float32, normed.device);
        Tensor? dRows = gradRows ? empty([n, hidden], fp16 ? ScalarType.Float32 : dtype, normed.device) : null;
        // The head weight's gradient is summed in place: in bf16 by the matmul itself (fp32 inside, one rounding per chunk),
        // so no fp32 sum and no per-chunk product of the weight's size exist; in fp32 under fp16 (the range of unscaled sums).
        // Outside fp16, the matmuls run on the head padded with zero rows to a whole number of 64 (gpt2's 50,257 → 50,304):
        // an odd vocabulary makes every V-wide operand's rows misaligned for the tensor cores (cuBLAS then takes slow
        // kernels). The padded logits are −∞ (out of the softmax), so their gradient columns are zero; the padded rows of
        // the weight's gradient are dropped.
        long padded = EngineHeadLoss.MatmulVocab(vocab, Execution.EngineSettings.PrecisionOf(dtype));
        bool pad = padded != vocab;
        Tensor? dHeadPadded = gradHead ? zeros([padded, hidden], dtype == ScalarType.BFloat16 ? dtype : ScalarType.Float32, normed.device) : null;
        Tensor? dHead = dHeadPadded is null ? null : pad ? dHeadPadded.narrow(0, 0, vocab) : dHeadPadded;
        // On a GPU the chunk's softmax, loss and gradient are one kernel over its logits, in place (CrossEntropyKernel).
        bool kernelPlanned = !fp16 && CrossEntropyKernel.Takes(normed);
        CrossEntropyKernel? kernel = kernelPlanned ? CrossEntropyKernel.TryGet(normed.device) : null;
        // Where the plan priced the kernel's chunk and the kernel cannot run, the tensor ops take shorter chunks to stay within it.
        if (kernelPlanned && kernel is null)
            chunkTokens = EngineHeadLoss.TensorOpsChunkTokens(chunkTokens, Execution.EngineSettings.PrecisionOf(dtype));
        using (no_grad())
        {
            Tensor x = rows.detach(), w = head.detach();
            Tensor wp = pad ? PadRows(w, padded) : w;
            for (long start = 0; start < n; start += chunkTokens)
            {
                using var chunkScope = NewDisposeScope();
                long r = Math.Min(chunkTokens, n - start);
                Tensor xc = x.narrow(0, start, r), yc = labels.narrow(0, start, r), vc = valid.narrow(0, start, r);
                if (kernel is not null)
                {
                    bool gradients = dRows is not null || dHead is not null;
                    Tensor logits = F.linear(xc, wp), rowLoss = empty([r], ScalarType.Float32, normed.device);
                    kernel.Run(logits, vocab, yc.clamp_min(zero).to(ScalarType.Int64), vc.to(ScalarType.Float32), scale.reshape(1), rowLoss, gradients);
                    lossSum.add_(rowLoss.sum());
                    if (!gradients) continue;
                    // The logits now hold the gradient in the training precision, padded columns zero.
                    if (dRows is not null) dRows.narrow(0, start, r).copy_(logits.mm(wp));
                    dHeadPadded?.addmm_(logits.t(), xc);
                    continue;
                }
                Tensor target = yc.clamp_min(zero).unsqueeze(1);
                // log-softmax straight from the training-precision logits into fp32 (the same upcast, without a separate
                // cast pass), then exp in place: softmax; the loss is −log p[target]. Fewer passes over the chunk's
                // V-wide rows than logsumexp, subtract, exp and two multiplies (the head was 46% of gpt2's step, H100 2026-12-05).
                Tensor logProbs;
                using (Tensor logits = F.linear(xc, wp))
                {
                    // The padded columns at −∞: they add exactly nothing to the softmax's sum and get exactly zero gradient.
                    if (pad) logits.narrow(1, vocab, padded - vocab).fill_(double.NegativeInfinity);
                    logProbs = special.log_softmax(logits, 1, ScalarType.Float32);
                }
                lossSum.sub_((logProbs.gather(1, target).squeeze(1) * vc).sum());
                if (dRows is null && dHead is null) continue;

                // softmax − one-hot, times each row's factor in one pass: 1 / (tokens · divisor) for valid rows, 0 for
                // ignored ones (under fp16 the scale comes after the cast, see the remarks).
                Tensor weight = vc.to(ScalarType.Float32).unsqueeze(1);
                Tensor factor = fp16 ? weight : weight.mul(scale);
                Tensor grad = logProbs.exp_().scatter_add_(1, target, weight.neg()).mul_(factor);
                if (fp16)
                {
                    if (dRows is not null)
                        using (Tensor g16 = grad.to(dtype))
                            dRows.narrow(0, start, r).copy_(g16.mm(w)).mul_(scale);
                    grad.mul_(scale);
                    dHead?.addmm_(grad.t(), xc.to(ScalarType.Float32));
                    continue;
                }
                Tensor gc = dtype == ScalarType.Float32 ? grad : grad.to(dtype);
                if (!ReferenceEquals(gc, grad)) grad.Dispose();
                if (dRows is not null) dRows.narrow(0, start, r).copy_(gc.mm(wp));
                dHeadPadded?.addmm_(gc.t(), xc);
            }
        }
        Tensor loss = lossSum.squeeze(0).div(valid.sum()).div(by);
        if (dRows is not null) loss = loss + Zero(Inner(rows, dRows));
        if (dHead is not null) loss = loss + Zero(Inner(head, dHead));
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary><paramref name="w"/> [V, h] with zero rows appended up to <paramref name="rows"/>.</summary>
    private static Tensor PadRows(Tensor w, long rows)
    {
        Tensor padded = zeros([rows, w.shape[1]], w.dtype, w.device);
        padded.narrow(0, 0, w.shape[0]).copy_(w);
        return padded;
    }

    /// <summary>⟨a, b⟩ over every element, in fp32 when the dtypes differ (fp16 states, fp32 gradients).</summary>
    private static Tensor Inner(Tensor a, Tensor b) =>
        a.dtype == b.dtype ? a.reshape(-1).dot(b.reshape(-1)) : a.reshape(-1).to(b.dtype).dot(b.reshape(-1));

    /// <summary>A − A.detach(): exactly 0 in value, with A's gradient.</summary>
    private static Tensor Zero(Tensor a) => (a - a.detach()).to(ScalarType.Float32);
}

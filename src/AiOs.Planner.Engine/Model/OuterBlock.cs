using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace AiOs.Planner.Engine.Model;

/// <summary>
/// The parameters outside the layers: token and learned position embeddings, the final norm and the
/// output projection (the token embedding itself when tied). Used at both ends of a step: embedding
/// at the start of forward, logits and loss at its end.
/// </summary>
public sealed class OuterBlock : nn.Module<Tensor, Tensor>
{
    private readonly ModelSpec _spec;

    /// <summary>Wraps <paramref name="parameters"/> (a <see cref="ParameterLayout.ForOuter"/> buffer).</summary>
    public OuterBlock(ModelSpec spec, FlatParameters parameters) : base("outer_block")
    {
        _spec = spec;
        Parameters = parameters;
        foreach (var (name, p) in parameters.Named()) register_parameter(name.Replace('.', '_'), p);
    }

    /// <summary>The flat buffer the block's parameters view.</summary>
    public FlatParameters Parameters { get; }

    /// <summary>Token ids [batch, seq] (int64) to hidden states [batch, seq, hidden].</summary>
    public override Tensor forward(Tensor tokens)
    {
        using var scope = NewDisposeScope();
        long b = tokens.shape[0], t = tokens.shape[1];
        Tensor x = Parameters["tok.weight"].index_select(0, tokens.reshape(-1)).view(b, t, _spec.HiddenSize);
        if (_spec.Positions == PositionKind.Learned)
            x = x + Parameters["pos.weight"].narrow(0, 0, t).unsqueeze(0);
        if (training && _spec.Dropout > 0) x = F.dropout(x, _spec.Dropout, training: true);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>Hidden states to logits [batch, seq, vocab] through the final norm and the head.</summary>
    public Tensor Logits(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        Tensor normed = TransformerOps.Norm(hidden, _spec, Parameters, "lnf");
        return F.linear(normed, Head).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Tokens per chunk of the fused head and loss, and fused whatever the head asked for; null takes <see cref="EngineHeadLoss"/>'s
    /// rules. Tests set a small count to force several chunks and a ragged last one.
    /// </summary>
    internal long? LossChunkTokens { get; set; }

    /// <summary>Whether the last <see cref="Loss(Tensor, Tensor, double, HeadLoss)"/> ran the fused head (null before any): the seam tests check the head with.</summary>
    internal bool? LastLossFused { get; private set; }

    /// <summary>
    /// Mean next-token cross-entropy in fp32, divided by <paramref name="divisor"/> (the accumulation count), through the
    /// head of <see cref="HeadLoss.Auto"/> without a device budget (<see cref="EngineHeadLoss.IsFused"/>: fused where that
    /// lowers the bytes at the loss). For callers that have no settings: probes, evaluation, the reference trainer.
    /// </summary>
    public Tensor Loss(Tensor hidden, Tensor targets, double divisor) => Loss(hidden, targets, divisor, HeadLoss.Auto);

    /// <summary>
    /// Mean next-token cross-entropy in fp32, divided by <paramref name="divisor"/>, through the head <paramref name="head"/>
    /// names: the trainers pass their settings' head, which <c>aios train</c> resolved (<see cref="EngineHeadLoss.Resolve"/>,
    /// the rule the planner prices), so the engine never decides on its own. The fused, chunked head
    /// (<see cref="ChunkedHeadLoss"/>) never holds the whole micro-batch's logits, and backward gets the head's gradients
    /// computed here; the unfused head is the faster where memory allows. <see cref="HeadLoss.Auto"/> (settings nobody
    /// resolved) takes <see cref="EngineHeadLoss.IsFused"/>'s rule without a budget.
    /// </summary>
    public Tensor Loss(Tensor hidden, Tensor targets, double divisor, HeadLoss head)
    {
        long tokens = hidden.numel() / _spec.HiddenSize;
        bool fused = LossChunkTokens is not null || EngineHeadLoss.IsFused(head, tokens, _spec.VocabSize, _spec.HiddenSize, Execution.EngineSettings.PrecisionOf(hidden.dtype));
        LastLossFused = fused;
        if (!fused) return PaddedUnchunkedLoss(hidden, targets, divisor);
        using var scope = NewDisposeScope();
        Tensor normed = TransformerOps.Norm(hidden, _spec, Parameters, "lnf");
        long chunk = LossChunkTokens ?? EngineHeadLoss.ChunkTokens(_spec.VocabSize);
        return ChunkedHeadLoss.Loss(normed, Head, targets, divisor, chunk).MoveToOuterDisposeScope();
    }

    /// <summary>The loss as the unfused head computes it (full logits, upcast, <c>cross_entropy</c>): the reference tests compare <see cref="Loss(Tensor, Tensor, double)"/> with.</summary>
    internal Tensor UnchunkedLoss(Tensor hidden, Tensor targets, double divisor) => UnchunkedLoss(hidden, targets, divisor, _spec.VocabSize);

    /// <summary>
    /// The unfused head as the engine runs it: its matmul on the vocabulary padded to <see cref="EngineHeadLoss.MatmulVocab"/>
    /// (as the fused head), the padded logits dropped before the upcast (a view; the upcast copies anyway), so autograd's
    /// V-wide operands are aligned for the tensor cores.
    /// </summary>
    internal Tensor PaddedUnchunkedLoss(Tensor hidden, Tensor targets, double divisor) =>
        UnchunkedLoss(hidden, targets, divisor, EngineHeadLoss.MatmulVocab(_spec.VocabSize, Execution.EngineSettings.PrecisionOf(hidden.dtype)));

    /// <summary>Full logits through the head padded to <paramref name="padded"/> rows (none when it is the vocabulary), upcast, <c>cross_entropy</c>.</summary>
    private Tensor UnchunkedLoss(Tensor hidden, Tensor targets, double divisor, long padded)
    {
        long vocab = _spec.VocabSize;
        using var scope = NewDisposeScope();
        Tensor normed = TransformerOps.Norm(hidden, _spec, Parameters, "lnf");
        Tensor logits = padded == vocab ? F.linear(normed, Head) : F.linear(normed, F.pad(Head, [0, 0, 0, padded - vocab])).narrow(-1, 0, vocab);
        Tensor loss = F.cross_entropy(logits.to(ScalarType.Float32).reshape(-1, vocab), targets.reshape(-1));
        // The divisor as a Scalar this frame holds until the call returns (Native.KeptScalars says why: the operator's implicit
        // one failed here once in CI, "Unknown scalar type" from at::native::div, 2026-12-07).
        using TorchSharp.Scalar by = divisor;
        return loss.div(by).MoveToOuterDisposeScope();
    }

    /// <summary>The output projection's weight: the token embedding when tied.</summary>
    private Tensor Head => _spec.TiedEmbeddings ? Parameters["tok.weight"] : Parameters["head.weight"];
}

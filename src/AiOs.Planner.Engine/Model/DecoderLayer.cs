using AiOs.Planner.Models;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace AiOs.Planner.Engine.Model;

/// <summary>
/// One pre-norm decoder layer: x + Attn(Norm(x)), then + FFN(Norm(x)). Causal scaled-dot-product
/// attention with optional grouped-query heads and rotary positions; GELU MLP (exact or tanh GELU) or SwiGLU. Its
/// parameters are views into a <see cref="FlatParameters"/> it is given, so one module can run any
/// layer whose values were copied in (a device slot).
/// </summary>
public sealed class DecoderLayer : nn.Module<Tensor, Tensor>
{
    private readonly ModelSpec _spec;

    /// <summary>Wraps <paramref name="parameters"/> (a <see cref="ParameterLayout.ForLayer"/> buffer) as a layer.</summary>
    public DecoderLayer(ModelSpec spec, FlatParameters parameters) : base("decoder_layer")
    {
        _spec = spec;
        Parameters = parameters;
        foreach (var (name, p) in parameters.Named()) register_parameter(name.Replace('.', '_'), p);
    }

    /// <summary>The flat buffer the layer's parameters view.</summary>
    public FlatParameters Parameters { get; }

    /// <summary>Runs the layer on hidden states [batch, seq, hidden].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor attended = x + Dropout(Attention(TransformerOps.Norm(x, _spec, Parameters, "ln1")));
        Tensor result = attended + Dropout(FeedForward(TransformerOps.Norm(attended, _spec, Parameters, "ln2")));
        return result.MoveToOuterDisposeScope();
    }

    private Tensor Attention(Tensor h)
    {
        long b = h.shape[0], t = h.shape[1];
        int heads = _spec.NumHeads, kvHeads = _spec.KvHeads, d = _spec.HeadDim;
        // Full causal attention equals a sliding window (Mistral) only while no position has more than the window behind it.
        if (_spec.SlidingWindow is { } window && t > window)
            throw new NotSupportedException(
                $"{_spec.Name} attends over a sliding window of {window} tokens, which the engine does not implement; sequences of " +
                $"{t} tokens would be computed with full attention instead. Use --seq-len {window} or less.");
        // q, k and v as one product over the joint weight (ParameterLayout.Fused), then three views of its output.
        Tensor[] qkv = TransformerOps.Affine(h, Parameters.Fused("attn.qkv.weight")!, Parameters.Fused("attn.qkv.bias"))
            .split([heads * d, kvHeads * d, kvHeads * d], -1);
        Tensor q = qkv[0].view(b, t, heads, d).transpose(1, 2);
        Tensor k = qkv[1].view(b, t, kvHeads, d).transpose(1, 2);
        Tensor v = qkv[2].view(b, t, kvHeads, d).transpose(1, 2);
        if (_spec.Positions == PositionKind.Rotary)
        {
            q = TransformerOps.Rotary(q, _spec);
            k = TransformerOps.Rotary(k, _spec);
        }
        if (kvHeads != heads)
        {
            k = k.repeat_interleave(heads / kvHeads, 1);
            v = v.repeat_interleave(heads / kvHeads, 1);
        }
        Tensor a = F.scaled_dot_product_attention(q, k, v, p: DropoutProbability, is_casual: true);
        return TransformerOps.Linear(a.transpose(1, 2).reshape(b, t, _spec.HiddenSize), Parameters, "attn.o");
    }

    /// <summary>Dropout on the residual branches and attention weights while training (GPT-2's placement); 0 in eval mode.</summary>
    private double DropoutProbability => training ? _spec.Dropout : 0;

    private Tensor Dropout(Tensor x) => DropoutProbability > 0 ? F.dropout(x, DropoutProbability, training: true) : x;

    /// <summary>down(silu(gate(h)) · up(h)), gate and up as one product over their joint weight.</summary>
    private Tensor SwiGlu(Tensor h)
    {
        Tensor[] gateUp = TransformerOps.Affine(h, Parameters.Fused("mlp.gate_up.weight")!, Parameters.Fused("mlp.gate_up.bias")).chunk(2, -1);
        return TransformerOps.Linear(F.silu(gateUp[0]) * gateUp[1], Parameters, "mlp.down");
    }

    private Tensor FeedForward(Tensor h) => _spec.FfnKind switch
    {
        FfnKind.GeluMlp => TransformerOps.Linear(TransformerOps.Gelu(TransformerOps.Linear(h, Parameters, "mlp.fc"), _spec.Activation), Parameters, "mlp.proj"),
        FfnKind.Swiglu => SwiGlu(h),
        _ => throw new NotSupportedException($"FFN kind {_spec.FfnKind} is not supported by the engine."),
    };
}

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

    /// <summary>
    /// Runs the layer on hidden states [batch, seq, hidden]. Inside, the tokens are rows of one [batch · seq, hidden] matrix
    /// (a view), so each linear product is libtorch's <c>addmm</c> with the bias added by the product itself: its C++
    /// <c>linear</c>, which TorchSharp calls, takes <c>addmm</c> only for a 2-D input, and on a 3-D one ran the product and then a
    /// broadcast bias kernel of its own over the whole output (four more launches per GPT-2 layer's forward; on an H100,
    /// 2026-12-07, 59 µs a layer for gpt2-xl at micro-batch 1, about 2 ms of gpt2's 27 ms step at micro-batch 8).
    /// <c>AIOS_SEPARATE_BIAS=1</c> keeps the 3-D layout (for an A/B). Each TorchSharp call costs the host a few microseconds
    /// (a launch-bound step is the sum of them), so the shape is read once and nothing else is asked of the tensors.
    /// </summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long[] shape = x.shape;
        long b = shape[0], t = shape[1];
        Tensor rows = SeparateBias ? x : x.reshape(b * t, shape[2]);
        Tensor attended = rows + Dropout(Attention(TransformerOps.Norm(rows, _spec, Parameters, "ln1"), b, t));
        Tensor result = attended + Dropout(FeedForward(TransformerOps.Norm(attended, _spec, Parameters, "ln2")));
        // The output has the input's shape (a pre-norm layer keeps the hidden size).
        return (SeparateBias ? result : result.view(shape)).MoveToOuterDisposeScope();
    }

    /// <summary><c>AIOS_SEPARATE_BIAS=1</c>: the layer runs on [batch, seq, hidden] tensors, each bias added by a kernel of its own, as before 2026-12-07.</summary>
    private static readonly bool SeparateBias = Environment.GetEnvironmentVariable("AIOS_SEPARATE_BIAS") == "1";

    /// <summary>Attention over <paramref name="h"/>: [batch · seq, hidden] rows, or [batch, seq, hidden] under <see cref="SeparateBias"/>.</summary>
    private Tensor Attention(Tensor h, long b, long t)
    {
        int heads = _spec.NumHeads, kvHeads = _spec.KvHeads, d = _spec.HeadDim;
        // Full causal attention equals a sliding window (Mistral) only while no position has more than the window behind it.
        if (_spec.SlidingWindow is { } window && t > window)
            throw new NotSupportedException(
                $"{_spec.Name} attends over a sliding window of {window} tokens, which the engine does not implement; sequences of " +
                $"{t} tokens would be computed with full attention instead. Use --seq-len {window} or less.");
        // q, k and v as one product over the joint weight (ParameterLayout.Fused), then three views of its output, [b, heads,
        // t, d] each. With as many key-value heads as query heads, one view, one permutation and one unbind make them (three
        // TorchSharp calls and autograd nodes, against seven for a split and a view and a transpose of each third): the same
        // strides, so the same kernels and bits.
        Tensor joint = F.linear(h, Parameters.Fused("attn.qkv.weight")!, Parameters.Fused("attn.qkv.bias"));
        Tensor q, k, v;
        if (kvHeads == heads)
        {
            Tensor[] qkv = joint.view(b, t, 3, heads, d).permute(2, 0, 3, 1, 4).unbind(0);
            (q, k, v) = (qkv[0], qkv[1], qkv[2]);
        }
        else
        {
            Tensor[] qkv = joint.split([heads * d, kvHeads * d, kvHeads * d], -1);
            q = qkv[0].view(b, t, heads, d).transpose(1, 2);
            k = qkv[1].view(b, t, kvHeads, d).transpose(1, 2);
            v = qkv[2].view(b, t, kvHeads, d).transpose(1, 2);
        }
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
        Tensor merged = SeparateBias ? a.transpose(1, 2).reshape(b, t, _spec.HiddenSize) : a.transpose(1, 2).reshape(b * t, _spec.HiddenSize);
        return TransformerOps.Linear(merged, Parameters, "attn.o");
    }

    /// <summary>Dropout on the residual branches and attention weights while training (GPT-2's placement); 0 in eval mode.</summary>
    private double DropoutProbability => training ? _spec.Dropout : 0;

    private Tensor Dropout(Tensor x) => DropoutProbability > 0 ? F.dropout(x, DropoutProbability, training: true) : x;

    /// <summary>down(silu(gate(h)) · up(h)), gate and up as one product over their joint weight.</summary>
    private Tensor SwiGlu(Tensor h)
    {
        Tensor[] gateUp = F.linear(h, Parameters.Fused("mlp.gate_up.weight")!, Parameters.Fused("mlp.gate_up.bias")).chunk(2, -1);
        return TransformerOps.Linear(F.silu(gateUp[0]) * gateUp[1], Parameters, "mlp.down");
    }

    private Tensor FeedForward(Tensor h) => _spec.FfnKind switch
    {
        FfnKind.GeluMlp => TransformerOps.Linear(TransformerOps.Gelu(TransformerOps.Linear(h, Parameters, "mlp.fc"), _spec.Activation), Parameters, "mlp.proj"),
        FfnKind.Swiglu => SwiGlu(h),
        _ => throw new NotSupportedException($"FFN kind {_spec.FfnKind} is not supported by the engine."),
    };
}

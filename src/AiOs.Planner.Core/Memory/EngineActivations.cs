using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Memory;

/// <summary>
/// Bytes autograd keeps per token for the engine's own modules (Engine/Model: DecoderLayer, OuterBlock). The engine
/// holds the whole model in the training precision (no autocast, no fp32 residual stream), runs fused GELU and
/// scaled-dot-product attention (no score matrix), and upcasts only the logits for the loss.
/// </summary>
public static class EngineActivations
{
    /// <summary>Saved bytes per token of one decoder layer's forward with autograd.</summary>
    public static double LayerBytesPerToken(ModelSpec m, TrainingSettings s)
    {
        double a = s.ParamBytes, h = m.HiddenSize, f = m.FfnSize, kv = m.KvDim;
        double norm = m.Norm == NormKind.Rmsnorm ? a * h + 4 * h : a * h; // RMSNorm keeps its fp32 upcast too
        double rotary = m.Positions == PositionKind.Rotary ? a * (h + kv) : 0;
        double attention = norm          // first norm's input
            + a * h                      // its output, the input of the Q, K and V projections
            + a * (h + 2 * kv) + rotary  // Q, K, V (and their rotated copies)
            + a * h                      // attention output, kept by SDPA
            + a * h;                     // heads merged (a contiguous copy), kept by the output projection
        double ffn = norm + a * h + m.FfnKind switch
        {
            FfnKind.GeluMlp => 2 * a * f,  // fc output (GELU input) and GELU output (fc2 input)
            FfnKind.Swiglu => 4 * a * f,   // gate, SiLU output, up, their product
            _ => throw new InvalidOperationException($"Unknown FFN kind {m.FfnKind}."),
        };
        double masks = m.Dropout > 0 ? 2 * h : 0; // one byte per element after attention and after the MLP
        return attention + ffn + masks;
    }

    /// <summary>Bytes per token of a layer's input, all the layerwise engine keeps between forward and backward.</summary>
    public static double LayerInputBytesPerToken(ModelSpec m, TrainingSettings s) => (double)s.ParamBytes * m.HiddenSize;
}

using AiOs.Planner.Models;

namespace AiOs.Planner.DeepSpeed;

/// <summary>
/// The model as DeepSpeed's <c>model_to_params</c> sees it: the parameters of each <c>nn.Module</c> on its own
/// (<c>m.parameters(recurse=False)</c>), which for a Hugging Face decoder are the leaf modules (embeddings,
/// linear projections, norms), never a whole transformer block.
/// </summary>
public static class DeepSpeedModules
{
    /// <summary>
    /// DeepSpeed's <c>largest_layer_params</c> (deepspeed/runtime/zero/stage3.py, <c>model_to_params</c>): the most
    /// parameters any single module holds itself. GPT-2 fuses Q, K and V into one <c>c_attn</c> (learned positions);
    /// Llama-style models keep four projections. A tied output head counts its (shared) weight, as PyTorch does.
    /// </summary>
    public static long LargestModuleParameters(ModelSpec m)
    {
        ArgumentNullException.ThrowIfNull(m);
        long h = m.HiddenSize, f = m.FfnSize, kv = m.KvDim, v = m.VocabSize;
        long embedding = v * h;
        long positions = m.Positions == PositionKind.Learned ? (long)m.MaxSeqLen * h : 0;
        long qkvBias = m.HasQkvBias ? h + 2 * kv : 0;
        long attention = m.Positions == PositionKind.Learned
            ? h * (h + 2 * kv) + qkvBias                                          // GPT-2's fused c_attn
            : Math.Max(h * h + (m.HasQkvBias ? h : 0), h * h + (m.HasAttentionOutputBias ? h : 0)); // q_proj or o_proj
        long ffnUp = h * f + (m.HasMlpBias ? f : 0), ffnDown = f * h + (m.HasMlpBias ? h : 0);
        return new[] { embedding, positions, attention, ffnUp, ffnDown }.Max();
    }
}

using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Simulation;

/// <summary>
/// The work of one unit's forward for one micro-batch, as the simulator costs it: matmul FLOPs and the bytes
/// the unit saves for backward (the proxy for its element-wise traffic). Units are numbered as in the step
/// program: −1 the embedding, 0…L−1 the decoder layers, L the head and loss. Backward is twice the forward.
/// </summary>
public static class LayerWork
{
    /// <summary>Matmul FLOPs of unit <paramref name="unit"/>'s forward (causal attention computes half the score matrix).</summary>
    public static double ForwardFlops(ModelSpec m, TrainingSettings s, int unit)
    {
        double tokens = (double)s.MicroBatch * s.SeqLen;
        if (unit < 0) return 0;
        if (unit >= m.NumLayers) return 2.0 * tokens * m.HiddenSize * m.VocabSize;
        return 2.0 * tokens * m.LayerMatmulParameters + 2.0 * tokens * s.SeqLen * m.HiddenSize;
    }

    /// <summary>Bytes saved for backward by unit <paramref name="unit"/>'s forward.</summary>
    public static double ForwardSavedBytes(ModelSpec m, TrainingSettings s, int unit)
    {
        double tokens = (double)s.MicroBatch * s.SeqLen;
        if (unit < 0) return 2.0 * tokens * m.HiddenSize * 4;
        if (unit >= m.NumLayers) return ActivationModel.HeadBytesPerToken(m, s) * tokens;
        return ActivationModel.LayerBytesPerToken(m, s) * tokens;
    }
}

using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Memory;

/// <summary>The parts of DeepSpeed's layout that follow its module-by-module fetching and its CPU activation checkpoints.</summary>
internal sealed partial class StateLayout
{
    /// <summary>The gathered module (or tile), the prefetched parameters and the persistent small tensors, per GPU.</summary>
    private void AddWorkingSet(ModelSpec m, TrainingSettings s, ParameterWorkingSet ws, int pb, ref Bytes statesGpu)
    {
        string tiled = s.TilingFactor > 1 ? $", layer matrices in {s.TilingFactor} tiles" : "";
        Bytes gathered = Bytes.OfElements(ws.Tile, pb) * 2;
        Gpu.Add(new MemoryItem("gathered module", gathered, $"the largest module's full parameters and gradients while it runs{tiled}"));
        statesGpu += gathered;
        if (ws.Prefetched > 0)
            Gpu.Add(new MemoryItem("prefetched parameters", Bytes.OfElements(ws.Prefetched, pb),
                $"stage3_prefetch_bucket_size {ParameterWorkingSet.PrefetchBucket(m, s):N0} elements fetched ahead (one module may overshoot it), within stage3_max_live_parameters {s.MaxLiveParameters:N0}"));
        if (ws.Persistent > 0)
        {
            // Real bytes on the device, but outside DeepSpeed's estimator's model-state count, which ModelStatesGpu follows.
            Gpu.Add(new MemoryItem("persistent parameters", Bytes.OfElements(ws.Persistent, pb),
                $"biases and norms at or below stage3_param_persistence_threshold {ParameterWorkingSet.PersistenceThreshold(m, s):N0}, kept whole on every GPU"));
        }
    }

    /// <summary>
    /// DeepSpeed's <c>cpu_checkpointing</c>: every layer's checkpoint waits in host RAM between forward and backward
    /// (pageable: DeepSpeed copies with <c>.cpu()</c>), one copy per training process.
    /// </summary>
    private void AddOffloadedCheckpoints(ModelSpec m, TrainingSettings s, int gpusPerNode)
    {
        if (s.ActivationOffload != OffloadTier.Cpu || !s.ActivationCheckpointing) return;
        long tokens = (long)s.MicroBatch * s.SeqLen;
        Bytes perLayer = new((long)Math.Ceiling(ActivationModel.CheckpointBytesPerToken(m, s) * tokens));
        CpuPageable.Add(new MemoryItem("activation checkpoints", perLayer * ((long)m.NumLayers * gpusPerNode),
            $"every layer's checkpoint in CPU RAM (cpu_checkpointing), {gpusPerNode} process(es)"));
    }
}

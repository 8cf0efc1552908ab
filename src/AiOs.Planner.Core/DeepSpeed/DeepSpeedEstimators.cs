namespace AiOs.Planner.DeepSpeed;

/// <summary>
/// DeepSpeed's published model-state estimators (<c>deepspeed.runtime.zero.stage3</c> and
/// <c>stage_1_and_2</c>: <c>estimate_zero3_model_states_mem_needs</c> and
/// <c>estimate_zero2_model_states_mem_needs</c>), re-derived here so plans can be checked against them.
/// The <c>_all_live</c> variants count a live model's parameters; the <c>_all_cold</c> variants take the counts
/// as numbers: both reduce to these functions. Results are bytes: CPU per node, GPU per GPU. Checked against
/// deepspeedai/DeepSpeed master (edaa722, 2026-08-22). The ZeRO-3 estimator's <c>largestLayerParams</c> is
/// DeepSpeed's largest single module (<see cref="DeepSpeedModules.LargestModuleParameters"/>), not a transformer block.
/// </summary>
public static class DeepSpeedEstimators
{
    /// <summary>Per-GPU and per-node bytes as DeepSpeed's ZeRO-3 estimator gives them.</summary>
    public static (long CpuBytes, long GpuBytes, long LargestLayerBytes) Zero3(
        long totalParams, long largestLayerParams, int gpusPerNode = 1, int nodes = 1,
        bool cpuOffload = true, bool cpuOffloadParams = true, bool zeroInit = true, double additionalBufferFactor = 1.5)
    {
        long totalGpus = (long)nodes * gpusPerNode;
        double gpusFactor = 1.0 / nodes;
        long largestLayerMemory = 4 * largestLayerParams;
        double cpu;
        long gpu;
        if (cpuOffload)
        {
            if (cpuOffloadParams)
            {
                gpu = largestLayerMemory;
                cpu = zeroInit
                    ? totalParams * 18 * gpusFactor * additionalBufferFactor
                    : totalParams * Math.Max(4.0 * gpusPerNode, 18 * gpusFactor) * additionalBufferFactor;
            }
            else
            {
                gpu = largestLayerMemory + (long)(2.0 * totalParams / totalGpus);
                cpu = zeroInit
                    ? totalParams * 16 * gpusFactor * additionalBufferFactor
                    : totalParams * Math.Max(4.0 * gpusPerNode, 16 * gpusFactor) * additionalBufferFactor;
            }
        }
        else
        {
            gpu = largestLayerMemory + (long)(18.0 * totalParams / totalGpus);
            cpu = zeroInit
                ? largestLayerParams * 4.0 * gpusPerNode * additionalBufferFactor
                : totalParams * 4.0 * gpusPerNode * additionalBufferFactor;
        }
        return ((long)cpu, gpu, largestLayerMemory);
    }

    /// <summary>Per-GPU and per-node bytes as DeepSpeed's ZeRO-2 estimator gives them.</summary>
    public static (long CpuBytes, long GpuBytes) Zero2(
        long totalParams, int gpusPerNode = 1, int nodes = 1, bool cpuOffload = true, double additionalBufferFactor = 1.5)
    {
        long totalGpus = (long)nodes * gpusPerNode;
        if (cpuOffload)
            return ((long)(totalParams * Math.Max(4.0 * totalGpus, 16) * additionalBufferFactor), 2 * totalParams);
        // Today's source: 2 B of 16-bit parameters whole, and 18 B partitioned (16-bit and fp32 gradients, fp32 master,
        // Adam m and v); DeepSpeed before 2024 wrote 4P + 16P/N here (16-bit gradients counted whole).
        return ((long)(totalParams * 4.0 * gpusPerNode * additionalBufferFactor), 2 * totalParams + (long)(18.0 * totalParams / totalGpus));
    }
}

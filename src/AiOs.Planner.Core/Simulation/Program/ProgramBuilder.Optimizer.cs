using AiOs.Planner.Memory;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Simulation.Program;

/// <summary>Optimizer operations: after backward over sub-groups (DeepSpeed), or per layer during backward (overlapped).</summary>
internal sealed partial class ProgramBuilder
{
    private int OptimizerStateBytes => StateLayout.OptimizerStateBytes(_s);

    /// <summary>Bytes per parameter read from NVMe before an update: optimizer states when they live there, fp32 gradients when they do.</summary>
    private int OptimizerReadBytes =>
        (_s.OptimizerOffload == OffloadTier.Nvme ? OptimizerStateBytes : 0) + (_s.EffectiveGradientOffload == OffloadTier.Nvme ? 4 : 0);

    /// <summary>Updates one layer's partition on the CPU as soon as its gradients arrive (LoHan/Fuyou-style overlap).</summary>
    private int EmitLayerUpdate(int unit, int gradDone)
    {
        long n = Share(_unitGradients[unit + 1]);
        int mb = _s.GradAccumulation - 1;
        int last = gradDone;
        if (OptimizerReadBytes > 0)
            last = Add(OpKind.OptimizerRead, ResourceKind.Nvme, StepPhase.Backward, unit, mb, [last], Bytes.OfElements(n, OptimizerReadBytes), parameters: n);
        int step = Add(OpKind.OptimizerStep, ResourceKind.Cpu, StepPhase.Backward, unit, mb, [last], parameters: n);
        last = step;
        if (_s.OptimizerOffload == OffloadTier.Nvme)
            last = Add(OpKind.OptimizerWrite, ResourceKind.Nvme, StepPhase.Backward, unit, mb, [step], Bytes.OfElements(n, OptimizerStateBytes),
                parameters: n, write: true);
        int writeBack = EmitWriteBack(StepPhase.Backward, unit, mb, step, n);
        return writeBack >= 0 ? writeBack : last;
    }

    /// <summary>The optimizer after backward: on the GPU, or on the CPU over sub-groups swapped from NVMe.</summary>
    private void EmitOptimizer(int[] after)
    {
        long p = _m.TotalParameters;
        if (_s.OptimizerOffload == OffloadTier.None)
        {
            long elements = _s.ZeroStage == ZeroStage.None ? p : Share(p);
            // Bytes per parameter a fused Adam touches: read weights, gradient, m, v; write weights, m, v
            // (mixed-precision ZeRO also writes the low-precision copy).
            int perParameter = _s.IsMixedPrecision && _s.ZeroStage != ZeroStage.None ? 30 : 28;
            int step = Add(OpKind.OptimizerStep, ResourceKind.Compute, StepPhase.Optimizer, 0, 0, after,
                elementwise: (double)elements * perParameter, parameters: elements);
            if (_s.ZeroStage is ZeroStage.Zero1 or ZeroStage.Zero2 && _gpus > 1)
                Add(OpKind.AllGather, ResourceKind.Collective, StepPhase.Optimizer, 0, 0, [step], Bytes.OfElements(p, _pb));
            return;
        }

        long total = Share(p);
        long subGroup = Math.Max(1, Math.Min(_s.SubGroupSize, total));
        int groups = (int)((total + subGroup - 1) / subGroup);
        bool nvme = _s.OptimizerOffload == OffloadTier.Nvme;
        var steps = new List<int>(groups);
        var tails = new List<int>(groups);
        int previousTail = -1;
        for (int g = 0; g < groups; g++)
        {
            long n = Math.Min(subGroup, total - g * subGroup);
            // Only the first sub-group waits for every gradient; later ones follow it in their resource's order.
            int[] start = g == 0 ? after : [];
            int read = -1;
            if (OptimizerReadBytes > 0)
            {
                // One set of swap buffers serialises read → update → write; pipelined reading keeps a second set.
                int buffer = _s.PipelineRead ? (g >= 2 ? steps[g - 2] : -1) : previousTail;
                read = Add(OpKind.OptimizerRead, ResourceKind.Nvme, StepPhase.Optimizer, g, 0, buffer >= 0 ? [.. start, buffer] : start,
                    Bytes.OfElements(n, OptimizerReadBytes), parameters: n);
            }
            int waitForWrite = nvme && !_s.PipelineWrite ? previousTail : -1;
            int[] stepDeps = read >= 0 ? Deps(read, waitForWrite) : waitForWrite >= 0 ? [.. start, waitForWrite] : start;
            int step = Add(OpKind.OptimizerStep, ResourceKind.Cpu, StepPhase.Optimizer, g, 0, stepDeps, parameters: n);
            steps.Add(step);
            int tail = step;
            if (nvme)
                tail = Add(OpKind.OptimizerWrite, ResourceKind.Nvme, StepPhase.Optimizer, g, 0, [step], Bytes.OfElements(n, OptimizerStateBytes),
                    parameters: n, write: true);
            int writeBack = EmitWriteBack(StepPhase.Optimizer, g, 0, step, n);
            tails.Add(writeBack >= 0 ? writeBack : tail);
            previousTail = tail;
        }
        if (_s.ZeroStage is ZeroStage.Zero1 or ZeroStage.Zero2 && _gpus > 1)
            Add(OpKind.AllGather, ResourceKind.Collective, StepPhase.Optimizer, 0, 0, tails.ToArray(), Bytes.OfElements(p, _pb));
    }

    /// <summary>Writes updated low-precision parameters back to where they live; none when they live in CPU RAM.</summary>
    private int EmitWriteBack(StepPhase phase, int layer, int mb, int step, long elements)
    {
        Bytes bytes = Bytes.OfElements(elements, _pb);
        if (_s.ParamOffload == OffloadTier.Nvme)
            return Add(OpKind.ParamWriteBack, ResourceKind.Nvme, phase, layer, mb, [step], bytes, write: true);
        if (_s.ParamOffload == OffloadTier.None && _hw.HasGpu)
            return Add(OpKind.ParamWriteBack, ResourceKind.H2d, phase, layer, mb, [step], bytes);
        return -1;
    }
}

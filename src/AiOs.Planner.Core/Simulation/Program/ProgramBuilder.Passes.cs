using AiOs.Planner.Memory;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Simulation.Program;

/// <summary>Forward, backward and gradient operations of one unit.</summary>
internal sealed partial class ProgramBuilder
{
    /// <summary>Brings the parameters used at position <paramref name="p"/> to the device: NVMe → pinned → device → all-gather.</summary>
    private void EmitFetch(int p)
    {
        if (!_fetches) return;
        var (unit, mb, phase) = _uses[p];
        long elements = _unitParameters[unit + 1];
        Bytes share = Bytes.OfElements(Share(elements), _pb);
        long full = elements * _pb;
        int release = p - _window >= 0 ? _consumerOf[p - _window] : -1;
        MemoryEffect[] Allocate() => [new MemoryEffect(_deviceTier, full, AtEnd: false)];
        bool allocated = false;
        int last = -1;
        if (_s.ParamOffload == OffloadTier.Nvme)
        {
            // A pinned staging buffer frees when its upload ends; on a CPU-only machine the read lands in the working buffer itself.
            int staging = _hw.HasGpu ? (p - _staging >= 0 ? _uploadOf[p - _staging] : -1) : release;
            last = Add(OpKind.ParamRead, ResourceKind.Nvme, phase, unit, mb, Deps(staging), share,
                effects: _hw.HasGpu ? null : Allocate());
            allocated = !_hw.HasGpu;
        }
        if (_hw.HasGpu && _s.ParamOffload != OffloadTier.None)
        {
            last = Add(OpKind.ParamUpload, ResourceKind.H2d, phase, unit, mb, Deps(last, release), share, effects: Allocate());
            _uploadOf[p] = last;
            allocated = true;
        }
        if (_gpus > 1)
        {
            last = Add(OpKind.AllGather, ResourceKind.Collective, phase, unit, mb, Deps(last, release), new Bytes(full),
                effects: allocated ? null : Allocate());
            allocated = true;
        }
        _fetchEnd[p] = last;
    }

    private int EmitForward(int p, int unit, int mb, int[] ready)
    {
        var effects = new List<MemoryEffect>(3);
        if (_fetchEnd[p] >= 0) effects.Add(new MemoryEffect(_deviceTier, -_unitParameters[unit + 1] * _pb, AtEnd: true));
        long keep = unit < 0 ? 0
            : unit >= _m.NumLayers ? _headActivations
            : _s.ActivationCheckpointing ? _checkpointActivations
            : _layerActivations;
        if (keep > 0) effects.Add(new MemoryEffect(_deviceTier, keep, AtEnd: true));
        _stored[p] = keep;
        long cache = AutocastCacheBytes();
        if (cache > 0 && unit < 0) effects.Add(new MemoryEffect(_deviceTier, cache, AtEnd: false));
        if (cache > 0 && unit >= _m.NumLayers) effects.Add(new MemoryEffect(_deviceTier, -cache, AtEnd: true));
        int op = Add(OpKind.Forward, ResourceKind.Compute, StepPhase.Forward, unit, mb, ready,
            flops: _forwardFlops[unit + 1], elementwise: _forwardElementwise[unit + 1], effects: effects.ToArray());
        _consumerOf[p] = op;
        return op;
    }

    private int EmitBackward(int p, int unit, int mb, int[] ready, long stored, int bucket)
    {
        bool layer = unit >= 0 && unit < _m.NumLayers;
        long full = _layerActivations;
        var effects = new List<MemoryEffect>(4) { new(_deviceTier, -stored, AtEnd: true) };
        if (layer && _s.ActivationCheckpointing)
        {
            int recompute = Add(OpKind.Recompute, ResourceKind.Compute, StepPhase.Backward, unit, mb, ready,
                flops: _forwardFlops[unit + 1], elementwise: _forwardElementwise[unit + 1],
                effects: [new MemoryEffect(_deviceTier, full, AtEnd: true)]);
            ready = [recompute];
            effects.Add(new MemoryEffect(_deviceTier, -full, AtEnd: true));
        }
        if (_fetchEnd[p] >= 0) effects.Add(new MemoryEffect(_deviceTier, -_unitParameters[unit + 1] * _pb, AtEnd: true));
        long grads = GradientBytesOnDevice(unit, mb);
        if (grads > 0) effects.Add(new MemoryEffect(_deviceTier, grads, AtEnd: true));
        if (bucket >= 0) ready = [.. ready, bucket];
        // The embedding's backward builds a dense vocabulary × hidden gradient however few tokens it saw.
        long dense = unit < 0 ? (long)_m.VocabSize * _m.HiddenSize * _pb : 0;
        int op = Add(OpKind.Backward, ResourceKind.Compute, StepPhase.Backward, unit, mb, ready,
            flops: 2 * _forwardFlops[unit + 1], elementwise: 2 * _forwardElementwise[unit + 1], effects: effects.ToArray(), denseGradient: dense);
        _consumerOf[p] = op;
        return op;
    }

    /// <summary>Reduce-scatter, device→host and NVMe write of one unit's gradients; returns the last op.</summary>
    private int EmitGradients(int p, int unit, int mb, int backward)
    {
        long elements = _unitGradients[unit + 1];
        long full = elements * _pb;
        long moving = MovingGradients() ? full : 0;
        int last = backward;
        bool download = _hw.HasGpu && _s.OptimizerOffload != OffloadTier.None;
        if (_gpus > 1)
        {
            // Without ZeRO, data parallelism all-reduces: twice the bytes of a reduce-scatter.
            long bytes = _s.ZeroStage == ZeroStage.None ? 2 * full : full;
            last = Add(OpKind.ReduceScatter, ResourceKind.Collective, StepPhase.Backward, unit, mb, [last], new Bytes(bytes),
                effects: moving > 0 && !download ? [new MemoryEffect(_deviceTier, -moving, AtEnd: true)] : null);
            if (moving > 0) _gradOut[p] = last;
        }
        if (download)
        {
            last = Add(OpKind.GradDownload, ResourceKind.D2h, StepPhase.Backward, unit, mb, [last], Bytes.OfElements(Share(elements), _pb),
                effects: moving > 0 ? [new MemoryEffect(_deviceTier, -moving, AtEnd: true)] : null);
            if (moving > 0) _gradOut[p] = last;
        }
        // Gradients accumulate in host memory over micro-batches and go to NVMe once, after the last.
        if (_s.EffectiveGradientOffload == OffloadTier.Nvme && mb == _s.GradAccumulation - 1)
            last = Add(OpKind.GradWrite, ResourceKind.Nvme, StepPhase.Backward, unit, mb, [last], Bytes.OfElements(Share(elements), 4),
                parameters: Share(elements), write: true);
        return last;
    }

    /// <summary>Gradients that appear on the device at a unit's backward and leave with its reduce-scatter or download.</summary>
    private bool MovingGradients() =>
        _hw.HasGpu && (_s.OptimizerOffload != OffloadTier.None || (_s.PartitionsParameters && _gpus > 1));

    private long GradientBytesOnDevice(int unit, int mb)
    {
        long elements = _unitGradients[unit + 1];
        if (MovingGradients()) return elements * _pb;
        // Without ZeRO, PyTorch allocates each gradient at its first backward and keeps it until the next step.
        if (_s.ZeroStage == ZeroStage.None && mb == 0) return elements * 4;
        return 0;
    }

    private long AutocastCacheBytes() =>
        _s.ZeroStage == ZeroStage.None && _s.IsMixedPrecision && _hw.HasGpu ? StateLayout.AutocastCacheOf(_m).Value : 0;

    private long Activations(double bytesPerToken) => (long)Math.Ceiling(bytesPerToken * _tokens);

    private double ComputeForwardFlops(int unit) => LayerWork.ForwardFlops(_m, _s, unit);

    private double ComputeForwardElementwise(int unit) => LayerWork.ForwardSavedBytes(_m, _s, unit);
}

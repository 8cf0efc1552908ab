using AiOs.Planner.Memory;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Simulation.Program;

/// <summary>Forward, backward and gradient operations of one unit.</summary>
internal sealed partial class ProgramBuilder
{
    /// <summary>Whether parameters pass through a host staging buffer and a copy into a device slot.</summary>
    private bool CopiesIntoSlots => _hw.HasGpu || _shape.SlotCopiesOnCpu;

    /// <summary>
    /// Brings the parameters used at position <paramref name="p"/> to the device: NVMe → pinned → device → all-gather.
    /// Deferred (the pass emits it later) while the op that frees its slot or buffer is not emitted yet.
    /// </summary>
    private void EmitFetch(int p)
    {
        if (!_fetches || _fetched[p]) return;
        var (unit, mb, phase) = _uses[p];
        bool outerRing = unit == OuterUnit;
        var ring = _rings[outerRing ? 1 : 0];
        int ordinal = _ringOrdinal[p];
        // The outer block has its own device slot and staging buffer; the other units share the window's.
        int window = outerRing ? 1 : _window, staging = outerRing ? 1 : _staging;
        int releasePosition = ordinal - window >= 0 ? ring[ordinal - window] : -1;
        int release = releasePosition >= 0 ? _consumerOf[releasePosition] : -1;
        if (releasePosition >= 0 && release < 0) return;
        int stagingPosition = ordinal - staging >= 0 ? ring[ordinal - staging] : -1;
        _fetched[p] = true;
        int slot = outerRing ? _staging : ordinal % _staging;
        int deviceSlot = outerRing ? _window : ordinal % _window;
        long elements = ParametersOf(unit);
        UnitId id = IdOf(unit);
        Bytes share = Bytes.OfElements(Share(elements), _pb);
        long full = elements * _pb;
        MemoryEffect[] Allocate() => [new MemoryEffect(_deviceTier, ResidentBytes(elements), AtEnd: false)];
        bool allocated = false;
        int last = -1;
        // A unit max_in_cpu keeps in RAM is uploaded from there, as with the CPU tier.
        bool fromNvme = ParamsOnNvme(id);
        if (fromNvme)
        {
            // A pinned staging buffer frees when its upload ends; on a CPU-only machine the read lands in the working buffer itself.
            int free = CopiesIntoSlots ? (stagingPosition >= 0 ? _uploadOf[stagingPosition] : -1) : release;
            last = Add(OpKind.ParamRead, ResourceKind.Nvme, phase, id, mb, StagingReadDeps(slot, Deps(free)), share,
                effects: CopiesIntoSlots ? null : Allocate(), slot: slot);
            NoteParamRead(id, last, slot);
            allocated = !CopiesIntoSlots;
        }
        if (CopiesIntoSlots && _s.ParamOffload != OffloadTier.None)
        {
            last = Add(OpKind.ParamUpload, ResourceKind.H2d, phase, id, mb, Deps(last, release), share, effects: Allocate(),
                slot: fromNvme ? slot : -1, deviceSlot: deviceSlot);
            _uploadOf[p] = last;
            allocated = true;
        }
        if (_gpus > 1)
        {
            last = Add(OpKind.AllGather, ResourceKind.Collective, phase, id, mb, Deps(last, release), new Bytes(full),
                effects: allocated ? null : Allocate(), deviceSlot: _fetches ? deviceSlot : -1);
            allocated = true;
        }
        _fetchEnd[p] = last;
    }

    /// <summary>The device slot the unit at position <paramref name="p"/> computes in; -1 when parameters do not move.</summary>
    private int DeviceSlotAt(int p) => !_fetches ? -1 : _uses[p].Unit == OuterUnit ? _window : _ringOrdinal[p] % _window;

    private int EmitForward(int p, int unit, int mb, int[] ready)
    {
        bool outerHeld = _uses[p].Unit == OuterUnit;
        var effects = new List<MemoryEffect>(3);
        // The outer block stays on the device until the embedding's backward.
        if (_fetchEnd[p] >= 0 && !outerHeld) effects.Add(new MemoryEffect(_deviceTier, -ResidentBytes(_unitParameters[unit + 1]), AtEnd: true));
        long keep = unit < 0 ? 0
            : unit >= _m.NumLayers ? _headActivations
            : Recomputes ? _checkpointActivations
            : _layerActivations;
        if (keep > 0) effects.Add(new MemoryEffect(_deviceTier, keep, AtEnd: true));
        _stored[p] = keep;
        long cache = AutocastCacheBytes();
        if (cache > 0 && unit < 0) effects.Add(new MemoryEffect(_deviceTier, cache, AtEnd: false));
        if (cache > 0 && unit >= _m.NumLayers) effects.Add(new MemoryEffect(_deviceTier, -cache, AtEnd: true));
        bool offloads = OffloadsCheckpoints && unit >= 0 && unit < _m.NumLayers && keep > 0;
        // The engine's copies overlap compute: a forward waits only for the copy out two layers back (two checkpoints on the device).
        if (offloads && _shape.PrefetchesCheckpoints && unit >= 2) ready = [.. ready, _checkpointOut[unit - 2]];
        bool head = unit >= _m.NumLayers;
        int op = Add(OpKind.Forward, ResourceKind.Compute, StepPhase.Forward, UnitId.OfNumber(unit, _m.NumLayers), mb, ready,
            flops: head ? HeadForwardFlops() : _forwardFlops[unit + 1],
            elementwise: head ? HeadForwardElementwise() : _forwardElementwise[unit + 1],
            effects: effects.ToArray(), deviceSlot: DeviceSlotAt(p), sums: unit < 0 ? AccumulatorZeroBytes(mb) : 0);
        if (!outerHeld) _consumerOf[p] = op;
        if (!offloads) return op;
        int copyOut = Add(OpKind.ActivationOffload, ResourceKind.D2h, StepPhase.Forward, UnitId.Layer(unit), mb, [op], new Bytes(_checkpointCopy),
            effects: [new MemoryEffect(_deviceTier, -keep, AtEnd: true)]);
        _checkpointOut[unit] = copyOut;
        // DeepSpeed copies the checkpoint with .cpu(), on the compute stream: the next layer waits for it.
        if (!_shape.PrefetchesCheckpoints) return copyOut;
        // The last two layers' checkpoints come back as soon as they are out: backward begins with them.
        if (unit == _m.NumLayers - 1)
            for (int i = unit; i >= Math.Max(0, unit - 1); i--) EmitCheckpointFetch(i, mb, -1);
        return op;
    }

    /// <summary>The engine's copy back of layer <paramref name="layer"/>'s checkpoint, after its copy out and after <paramref name="freedBy"/> (the backward that frees its place; -1 none).</summary>
    private void EmitCheckpointFetch(int layer, int mb, int freedBy) =>
        _checkpointIn[layer] = Add(OpKind.ActivationFetch, ResourceKind.H2d, StepPhase.Backward, UnitId.Layer(layer), mb, Deps(_checkpointOut[layer], freedBy),
            new Bytes(_checkpointCopy), effects: [new MemoryEffect(_deviceTier, _checkpointActivations, AtEnd: false)]);

    /// <summary>Outer block: the head's forward (with the loss) and backward, between the last layer's forward and backward.</summary>
    private void EmitHead(PassState pass, int mb)
    {
        int head = _m.NumLayers;
        int slot = DeviceSlotAt(pass.OuterPosition);
        pass.HeadStored = _headActivations;
        pass.PreviousCompute = Add(OpKind.Forward, ResourceKind.Compute, StepPhase.Forward, UnitId.Head(head), mb, [pass.PreviousCompute],
            flops: HeadForwardFlops(), elementwise: HeadForwardElementwise(),
            effects: _headActivations > 0 ? [new MemoryEffect(_deviceTier, _headActivations, AtEnd: true)] : [], deviceSlot: slot);
        pass.PreviousCompute = Add(OpKind.Backward, ResourceKind.Compute, StepPhase.Backward, UnitId.Head(head), mb, AfterPreviousDownload(OuterUnit, [pass.PreviousCompute]),
            flops: HeadBackwardShare * _forwardFlops[head + 1], elementwise: HeadBackwardShare * _forwardElementwise[head + 1],
            effects: _headActivations > 0 ? [new MemoryEffect(_deviceTier, -_headActivations, AtEnd: true)] : [], deviceSlot: slot);
    }

    /// <summary>Outer block: the embedding's backward, which frees the block's slot, then the block's gradients.</summary>
    private void EmitOuterBackward(PassState pass, int mb)
    {
        int p = pass.OuterPosition;
        var effects = new List<MemoryEffect>(2);
        if (_fetchEnd[p] >= 0) effects.Add(new MemoryEffect(_deviceTier, -ResidentBytes(ParametersOf(OuterUnit)), AtEnd: true));
        long grads = MovingGradients() ? GradientResidentBytes(GradientsOf(OuterUnit)) : 0;
        if (grads > 0) effects.Add(new MemoryEffect(_deviceTier, grads, AtEnd: true));
        int backward = Add(OpKind.Backward, ResourceKind.Compute, StepPhase.Backward, UnitId.Embedding, mb, [pass.PreviousCompute],
            flops: 2 * _forwardFlops[0], elementwise: 2 * _forwardElementwise[0], effects: effects.ToArray(),
            denseGradient: (long)_m.VocabSize * _m.HiddenSize * _pb, deviceSlot: DeviceSlotAt(p));
        pass.PreviousCompute = backward;
        _consumerOf[p] = backward;
        AfterBackward(p, OuterUnit, mb, pass);
    }

    private int EmitBackward(int p, int unit, int mb, int[] ready, long stored, int bucket)
    {
        bool layer = unit >= 0 && unit < _m.NumLayers;
        long full = _layerActivations;
        int slot = DeviceSlotAt(p);
        var effects = new List<MemoryEffect>(4) { new(_deviceTier, -stored, AtEnd: true) };
        bool offloaded = layer && Recomputes && OffloadsCheckpoints && stored > 0;
        if (offloaded && _shape.PrefetchesCheckpoints)
            ready = [.. ready, _checkpointIn[unit]];
        else if (offloaded)
        {
            // Brought back when its recompute starts, not ahead: DeepSpeed's checkpoint function copies it on entry.
            ready = [Add(OpKind.ActivationFetch, ResourceKind.H2d, StepPhase.Backward, UnitId.Layer(unit), mb, ready, new Bytes(stored),
                effects: [new MemoryEffect(_deviceTier, stored, AtEnd: false)])];
        }
        if (layer && Recomputes)
        {
            int recompute = Add(OpKind.Recompute, ResourceKind.Compute, StepPhase.Backward, UnitId.Layer(unit), mb, ready,
                flops: _forwardFlops[unit + 1], elementwise: _forwardElementwise[unit + 1],
                effects: [new MemoryEffect(_deviceTier, full, AtEnd: true)], deviceSlot: slot);
            ready = [recompute];
            effects.Add(new MemoryEffect(_deviceTier, -full, AtEnd: true));
        }
        if (_fetchEnd[p] >= 0) effects.Add(new MemoryEffect(_deviceTier, -ResidentBytes(_unitParameters[unit + 1]), AtEnd: true));
        long grads = GradientBytesOnDevice(unit, mb);
        if (grads > 0) effects.Add(new MemoryEffect(_deviceTier, grads, AtEnd: true));
        if (bucket >= 0) ready = [.. ready, bucket];
        ready = AfterPreviousDownload(unit, ready);
        // The embedding's backward builds a dense vocabulary × hidden gradient however few tokens it saw.
        long dense = unit < 0 ? (long)_m.VocabSize * _m.HiddenSize * _pb : 0;
        bool head = unit >= _m.NumLayers;
        int op = Add(OpKind.Backward, ResourceKind.Compute, StepPhase.Backward, UnitId.OfNumber(unit, _m.NumLayers), mb, ready,
            flops: head ? HeadBackwardShare * _forwardFlops[unit + 1] : 2 * _forwardFlops[unit + 1],
            elementwise: head ? HeadBackwardShare * _forwardElementwise[unit + 1] : 2 * _forwardElementwise[unit + 1],
            effects: effects.ToArray(), denseGradient: dense,
            deviceSlot: slot, sums: LandingBytes(unit, mb));
        _consumerOf[p] = op;
        // Its place on the device is free: the checkpoint two layers down comes back (one layer ahead of its recompute).
        if (offloaded && _shape.PrefetchesCheckpoints && unit >= 2) EmitCheckpointFetch(unit - 2, mb, op);
        return op;
    }

    /// <summary>Reduce-scatter, device→host and NVMe write of one unit's gradients; returns the last op.</summary>
    private int EmitGradients(int p, int unit, int mb, int backward)
    {
        long elements = GradientsOf(unit);
        UnitId id = IdOf(unit);
        long full = elements * _pb;
        long moving = MovingGradients() ? GradientResidentBytes(elements) : 0;
        int last = backward;
        bool download = (_hw.HasGpu || _shape.SlotCopiesOnCpu) && CpuOptimizer;
        if (_gpus > 1 && AllReducesAtBoundary(moving))
        {
            // Plain data parallelism all-reduces each unit's step gradient once, after the step's whole backward (EmitBoundaryAllReduces).
            if (mb == _s.GradAccumulation - 1) _boundaryAllReduces.Add((id, 2 * full));
        }
        else if (_gpus > 1)
        {
            // Without ZeRO, data parallelism all-reduces: twice the bytes of a reduce-scatter.
            long bytes = _s.ZeroStage == ZeroStage.None ? 2 * full : full;
            last = Add(OpKind.ReduceScatter, ResourceKind.Collective, StepPhase.Backward, id, mb, [last], new Bytes(bytes),
                effects: moving > 0 && !download ? [new MemoryEffect(_deviceTier, -moving, AtEnd: true)] : null, deviceSlot: DeviceSlotAt(p));
            if (moving > 0) _gradOut[p] = last;
        }
        bool nvme = _s.EffectiveGradientOffload == OffloadTier.Nvme;
        bool readModifyWrite = nvme && _shape.GradientWrites == NvmeGradientWrites.ReadModifyWriteEachMicroBatch;
        Bytes fp32 = Bytes.OfElements(Share(elements), 4);
        int read = -1;
        if (readModifyWrite && mb > 0)
            // The sum so far comes back into the one host buffer, free once the previous unit's write has ended.
            read = Add(OpKind.GradRead, ResourceKind.Nvme, StepPhase.Backward, id, mb, Deps(_lastGradWrite), fp32, parameters: Share(elements));
        if (download)
        {
            // Read-modify-write drains into the one host buffer: after this unit's read, or after the previous unit's write.
            int bufferFree = read >= 0 ? read : readModifyWrite ? _lastGradWrite : -1;
            // The engine widens the first micro-batch to fp32 for its host sums, unless the host keeps bf16 (exact at accumulation 1).
            bool widened = _shape.WideFirstGradientDownload && _hw.HasGpu && !nvme && mb == 0 && !EngineMemory.HostGradientsInBf16(_s);
            int elementBytes = widened ? Math.Max(_pb, 4) : _pb;
            // Later micro-batches into CPU RAM are added into the fp32 sums on the host (one process: by the host-sums thread), which after
            // the step's last one also takes the unit's Σg² from the sums. A step of one micro-batch adds nothing, and its Σg²
            // is taken on the device from the packed gradients and lands with them (CpuGradientStore): no host pass. (Taken on
            // the host, it was a pass over each unit inside the download's settle, which CPU Adam beside the backward slowed
            // several times over: delayed gpt2-xl's backward 361 ms with it, 226 without, H100 VM, 2026-12-06.) Several ranks
            // download without copy streams (their reduce-scatter takes the gradients), so there the host still takes it.
            var hostAdd = !_shape.HostAddsLaterGradients || !_hw.HasGpu || nvme ? default
                : mb > 0 ? new HostAccumulation(Share(elements), _pb, SumsSquares: mb == _s.GradAccumulation - 1)
                : _s.GradAccumulation == 1 && _gpus > 1 ? HostAccumulation.SquaresOnly(Share(elements), elementBytes)
                : default;
            // One process: the download only packs and queues the copy into the next of the pinned staging buffers, so the
            // slot is free when it ends; the add is an operation of its own on the host-sums thread (priced at zero on a CPU
            // device, as the download was), and the unit's optimizer waits for the add. The download waits for the add that
            // read its staging buffer last. Several ranks download without copy streams and add in the download.
            bool addApart = _shape.HostAddsLaterGradients && !nvme && mb > 0 && _gpus == 1;
            if (addApart && _accumulates.Count >= _shape.GradientStagingBuffers) bufferFree = _accumulates[^_shape.GradientStagingBuffers];
            last = Add(OpKind.GradDownload, ResourceKind.D2h, StepPhase.Backward, id, mb, Deps(last, bufferFree),
                Bytes.OfElements(Share(elements), elementBytes), effects: moving > 0 ? [new MemoryEffect(_deviceTier, -moving, AtEnd: true)] : null,
                deviceSlot: DeviceSlotAt(p), hostAdd: addApart ? default : hostAdd);
            if (moving > 0 || _shape.OuterBlock) _gradOut[p] = last;
            _lastDownload[unit] = last;
            if (addApart)
            {
                last = Add(OpKind.GradAccumulate, ResourceKind.HostSums, StepPhase.Backward, id, mb, [last], hostAdd: hostAdd);
                _accumulates.Add(last);
            }
        }
        // DeepSpeed: gradients accumulate in host memory over micro-batches and go to NVMe once, after the last.
        if (nvme && (readModifyWrite || mb == _s.GradAccumulation - 1))
        {
            last = Add(OpKind.GradWrite, ResourceKind.Nvme, StepPhase.Backward, id, mb, [last], fp32, parameters: Share(elements), write: true);
            _lastGradWrite = last;
        }
        return last;
    }

    /// <summary>The step's <see cref="OpKind.GradAccumulate"/> operations so far: the k-th download into staging waits for add k − <see cref="ProgramShape.GradientStagingBuffers"/>.</summary>
    private readonly List<int> _accumulates = [];

    /// <summary>Each unit's latest gradient download: the engine accumulates into the parameters' own gradients, so the next backward waits for it.</summary>
    private readonly Dictionary<int, int> _lastDownload = [];

    /// <summary>With the engine's shape, <paramref name="ready"/> plus the unit's previous gradient download.</summary>
    private int[] AfterPreviousDownload(int unit, int[] ready) =>
        _shape.OuterBlock && _lastDownload.TryGetValue(unit, out int download) && !ready.Contains(download) ? [.. ready, download] : ready;

    /// <summary>The last gradient write so far (its host buffer is the one the next read-modify-write reuses); -1 none.</summary>
    private int _lastGradWrite = -1;

    /// <summary>Gradients that appear on the device at a unit's backward and leave with its reduce-scatter or download.</summary>
    /// <summary>
    /// Whether the step's gradients are all-reduced once, at the accumulation boundary after the last micro-batch's whole
    /// backward: plain data parallelism (no ZeRO stage) with the gradients staying on the device. DeepSpeed's engine reduces
    /// only at the boundary there (<c>is_gradient_accumulation_boundary</c>) and after backward, and the aios resident
    /// trainer all-reduces every unit's summed gradient after the last micro-batch's embedding backward.
    /// </summary>
    private bool AllReducesAtBoundary(long moving) => _s.ZeroStage == ZeroStage.None && moving == 0;

    /// <summary>
    /// The boundary's all-reduces (<see cref="AllReducesAtBoundary"/>), one per unit in backward order, after the step's last
    /// backward operation (<paramref name="lastBackward"/>); each is added to the gradients the optimizer waits for.
    /// </summary>
    private void EmitBoundaryAllReduces(int lastBackward, List<int> gradientsDone)
    {
        int previous = lastBackward;
        foreach (var (unit, bytes) in _boundaryAllReduces)
        {
            previous = Add(OpKind.ReduceScatter, ResourceKind.Collective, StepPhase.Backward, unit, _s.GradAccumulation - 1, [previous], new Bytes(bytes));
            gradientsDone.Add(previous);
        }
        _boundaryAllReduces.Clear();
    }

    private bool MovingGradients() =>
        _hw.HasGpu && (CpuOptimizer || (_s.PartitionsParameters && _gpus > 1));

    private long GradientBytesOnDevice(int unit, int mb)
    {
        long elements = _unitGradients[unit + 1];
        if (MovingGradients()) return GradientResidentBytes(elements);
        // Without ZeRO, PyTorch allocates each gradient at its first backward and keeps it until the next step.
        if (_s.ZeroStage == ZeroStage.None && mb == 0) return elements * 4;
        return 0;
    }

    private long AutocastCacheBytes() =>
        _s.ZeroStage == ZeroStage.None && _s.IsMixedPrecision && _hw.HasGpu && !_shape.CpuOptimizer ? StateLayout.AutocastCacheOf(_m).Value : 0;

    private long Activations(double bytesPerToken) => (long)Math.Ceiling(bytesPerToken * _tokens);

    private double ComputeForwardFlops(int unit) => LayerWork.ForwardFlops(_m, _s, unit);

    private double ComputeForwardElementwise(int unit) => LayerWork.ForwardSavedBytes(_m, _s, unit);

    /// <summary>
    /// Whether the resident engine sums a step's micro-batches in fp32 accumulators (Engine <c>DeviceTrainer</c>): the aios
    /// executor, nothing offloaded, accumulation above 1, a 16-bit training precision. It zeroes the sums at the step's
    /// first micro-batch and adds each unit's packed gradients into its sums as the unit's backward ends (<c>Land</c>;
    /// autograd's gradients are taken, not zeroed): passes over the whole model that the layers' fitted work does not hold.
    /// </summary>
    private bool ResidentAccumulatesInFp32 =>
        _s.Executor == ExecutorKind.Aios && EngineMemory.IsResident(_s) && _s.GradAccumulation > 1 && _s.Precision != Precision.Fp32;

    /// <summary>Bytes the resident engine's zeroing of the fp32 sums moves at micro-batch <paramref name="mb"/>'s start: all of them at the first, none after (<see cref="ResidentAccumulatesInFp32"/>).</summary>
    private double AccumulatorZeroBytes(int mb) => !ResidentAccumulatesInFp32 || mb > 0 ? 0 : (double)_m.TotalParameters * 4;

    /// <summary>
    /// Bytes the resident engine's landing of unit <paramref name="unit"/>'s gradients moves as its backward ends (Engine
    /// <c>DeviceTrainer.Land</c>), a layer's with its own backward, the engine's outer block (the embedding, the head and
    /// what they share) with the embedding's, none with the head's: the concatenation of the gradients autograd made (read
    /// and written in the training precision), at every micro-batch; and with accumulation above 1 the add, into the fp32
    /// sums (<see cref="ResidentAccumulatesInFp32"/>: read both, write the sum) or, in fp32 training, into the flat buffer
    /// at the later micro-batches (read both, write). The calibration's timed backward leaves the landing out.
    /// </summary>
    private double LandingBytes(int unit, int mb)
    {
        if (_s.Executor != ExecutorKind.Aios || !EngineMemory.IsResident(_s) || unit >= _m.NumLayers) return 0;
        long parameters = unit >= 0 ? _unitParameters[unit + 1] : _m.TotalParameters - LayerParameterTotal();
        double perParameter = 2 * _pb;
        if (ResidentAccumulatesInFp32) perParameter += _pb + 8;
        else if (_s.GradAccumulation > 1 && mb > 0) perParameter += 3 * _pb;
        return parameters * perParameter;
    }

    private long LayerParameterTotal()
    {
        long total = 0;
        for (int u = 0; u < _m.NumLayers; u++) total += _unitParameters[u + 1];
        return total;
    }

    /// <summary>The head's backward against its forward's work: the unfused head's two matmuls; none for the fused head, which took its gradients in forward.</summary>
    private double HeadBackwardShare => _headFused ? 0 : 2;

    /// <summary>The head's forward FLOPs: the fused head's three matmuls (its gradients are taken there), else one.</summary>
    private double HeadForwardFlops() => (_headFused ? 3 : 1) * _forwardFlops[_m.NumLayers + 1];

    /// <summary>The head's forward element-wise bytes: the fused head's three passes (<see cref="KernelHeadElementwise"/> with its kernel), else one.</summary>
    private double HeadForwardElementwise() =>
        _headKernel ? KernelHeadElementwise() : (_headFused ? 3 : 1) * _forwardElementwise[_m.NumLayers + 1];

    /// <summary>
    /// The fused head's element-wise bytes with its kernel: the three passes' work outside the logits (the final norm, the
    /// embedding output) as before, and for the logits only the kernel's two reads and one write of them in the training
    /// precision (a·P each per token) where the tensor ops moved the fp32 copies (<see cref="ActivationModel.LogitsBytesPerToken"/>).
    /// </summary>
    private double KernelHeadElementwise()
    {
        double logits = ActivationModel.LogitsBytesPerToken(_m, _s) * _tokens;
        double kernel = 3.0 * _s.ParamBytes * EngineHeadLoss.MatmulVocab(_m.VocabSize, _s.Precision) * _tokens;
        return 3 * Math.Max(0, _forwardElementwise[_m.NumLayers + 1] - logits) + kernel;
    }
}

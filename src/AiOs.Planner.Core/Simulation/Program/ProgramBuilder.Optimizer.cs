using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Optim;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Simulation.Program;

/// <summary>Optimizer operations: after backward over sub-groups (DeepSpeed), or per layer during backward (overlapped).</summary>
internal sealed partial class ProgramBuilder
{
    /// <summary>
    /// Optimizer state of <paramref name="n"/> parameters as swapped with NVMe. In 8-bit the engine's sub-groups hold
    /// [fp32 master | m codes | v codes | scales] whatever the precision (its shape fixes the master); otherwise the memory model's bytes.
    /// </summary>
    private Bytes OptimizerState(long n) => (_s.OptimizerState == OptimizerStateFormat.Fp32
        ? Bytes.OfElements(n, _shape.OptimizerStateBytes ?? StateLayout.OptimizerStateBytes(_s))
        : _shape.OptimizerStateBytes is not null ? _s.OptimizerState.StateBytes(n) : StateLayout.OptimizerState(_s, n)) - SplitMasterSaving(n);

    /// <summary>
    /// Bytes of master that <c>--master-weights split</c> leaves out of a swapped state of <paramref name="n"/> parameters:
    /// 2 per parameter (the remainder stays, the high half is the bf16 parameter). Sub-groups kept in RAM keep a whole master.
    /// </summary>
    private Bytes SplitMasterSaving(long n) => _s.MasterWeights == MasterWeights.Split
        ? Bytes.OfElements(n, 4 - MasterWeights.Split.StateBytesPerParameter()) : Bytes.Zero;

    /// <summary>
    /// Bytes the split master's update reads from NVMe besides the state: the high halves of <paramref name="n"/> parameters of
    /// <paramref name="unit"/> from its parameter file (the engine reads them in the OptimizerRead; from RAM when the unit is kept
    /// there or its last read of the step is still staged, <see cref="StagedHighHalves"/>).
    /// </summary>
    private Bytes SplitMasterHighHalves(UnitId unit, long n, bool statesOnNvme) =>
        _s.MasterWeights == MasterWeights.Split && statesOnNvme && ParamsOnNvme(unit) ? Bytes.OfElements(n, 2) : Bytes.Zero;

    /// <summary>
    /// Optimizer-state bytes per parameter for <see cref="OptimizerPlacement"/>: the format's (8-bit: its
    /// <see cref="OptimizerStateFormats.BytesPerParameter"/>, less the master when the memory model keeps none).
    /// </summary>
    private double OptimizerStateBytes => _s.OptimizerState == OptimizerStateFormat.Fp32
        ? _shape.OptimizerStateBytes ?? StateLayout.OptimizerStateBytes(_s)
        : _s.OptimizerState.BytesPerParameter() - (_shape.OptimizerStateBytes is null && !_s.IsMixedPrecision ? 4 : 0);

    /// <summary>Whether an update of a sub-group reads from NVMe first: its optimizer states when they live there, fp32 gradients when they do.</summary>
    private bool ReadsBeforeUpdate(bool statesOnNvme) => statesOnNvme || _s.EffectiveGradientOffload == OffloadTier.Nvme;

    /// <summary>Bytes read from NVMe before updating <paramref name="n"/> parameters; <paramref name="highHalvesStaged"/>: the split master's high halves come from a staging slot.</summary>
    private Bytes OptimizerRead(UnitId unit, long n, bool statesOnNvme, bool highHalvesStaged = false) =>
        (statesOnNvme ? OptimizerState(n) : Bytes.Zero) + (_s.EffectiveGradientOffload == OffloadTier.Nvme ? Bytes.OfElements(n, 4) : Bytes.Zero)
        + (highHalvesStaged ? Bytes.Zero : SplitMasterHighHalves(unit, n, statesOnNvme));

    /// <summary>Sub-groups (unit, index) whose state <see cref="OptimizerPlacement"/> keeps in RAM; null until first asked.</summary>
    private HashSet<(UnitId, int)>? _keptInRam;

    /// <summary><paramref name="g"/> marked with where its state lives under the optimizer RAM budget.</summary>
    private SubGroupRef Placed(SubGroupRef g)
    {
        if (_keptInRam is null)
        {
            var order = OptimizerUpdateOrder();
            bool[] inRam = OptimizerPlacement.InRam(order.Select(x => x.Elements).ToList(), OptimizerStateBytes, _s);
            _keptInRam = [.. order.Where((_, i) => inRam[i]).Select(x => (x.Unit, x.Index))];
        }
        return g with { KeptInRam = _keptInRam.Contains((g.Unit, g.Index)) };
    }

    private bool StatesOnNvme(SubGroupRef g) => _s.OptimizerOffload == OffloadTier.Nvme && !g.KeptInRam;

    /// <summary>Every sub-group in the order this program updates them (under the overlapped schedule without sub-groups within units, one per unit).</summary>
    private List<SubGroupRef> OptimizerUpdateOrder()
    {
        if (_s.Schedule != StepSchedule.Overlapped || !CpuOptimizer) return OptimizerGroups();
        // Overlapped: each unit as its backward ends (the outer block's at the end of the micro-batch).
        IEnumerable<int> units = _shape.OuterBlock
            ? [.. Enumerable.Range(0, _m.NumLayers).Reverse(), OuterUnit]
            : StepScheduler.ForwardUnits(_m).Reverse();
        return _shape.SubGroups == SubGroupBounds.WithinUnit
            ? units.SelectMany(u => SubGroupsWithin(IdOf(u), Share(GradientsOf(u)))).ToList()
            : units.Select(u => new SubGroupRef(IdOf(u), 0, 0, Share(GradientsOf(u)))).ToList();
    }

    /// <summary>The sub-groups after backward, in update order.</summary>
    private List<SubGroupRef> OptimizerGroups() => _shape.SubGroups == SubGroupBounds.FlatModel
        ? SubGroupsWithin(UnitId.Model, Share(_m.TotalParameters)).ToList()
        // The engine's unit order: the layers, then the outer block (or the embedding and head).
        : OptimizerUnits().SelectMany(u => SubGroupsWithin(IdOf(u), Share(GradientsOf(u)))).ToList();

    // The sub-group pipeline: steps so far and the tail (write) of the previous sub-group, across calls.
    private readonly List<int> _subGroupSteps = [];
    private int _previousTail = -1;

    /// <summary>Optimizer swap buffers the sub-group pipeline cycles through: two with pipelined reading, else one.</summary>
    private int OptimizerSlots => _s.PipelineRead ? 2 : 1;

    /// <summary>Updates one unit's partition on the CPU as soon as its gradients arrive (LoHan/Fuyou-style overlap).</summary>
    private int EmitLayerUpdate(int unit, int gradDone)
    {
        long n = Share(GradientsOf(unit));
        int mb = _s.GradAccumulation - 1;
        if (_shape.SubGroups == SubGroupBounds.WithinUnit)
        {
            int tail = gradDone;
            foreach (var g in SubGroupsWithin(IdOf(unit), n))
                tail = EmitSubGroup(g, StepPhase.Backward, mb, [gradDone]);
            return tail;
        }
        UnitId id = IdOf(unit);
        int last = gradDone;
        bool nvme = StatesOnNvme(Placed(new SubGroupRef(id, 0, 0, n)));
        if (ReadsBeforeUpdate(nvme))
            last = Add(OpKind.OptimizerRead, ResourceKind.Nvme, StepPhase.Backward, id, mb, [last], OptimizerRead(id, n, nvme), parameters: n);
        int step = Add(OpKind.OptimizerStep, ResourceKind.Cpu, StepPhase.Backward, id, mb, [last], parameters: n);
        last = step;
        if (nvme)
            last = Add(OpKind.OptimizerWrite, ResourceKind.Nvme, StepPhase.Backward, id, mb, [step], OptimizerState(n),
                parameters: n, write: true);
        int writeBack = EmitWriteBack(StepPhase.Backward, id, null, mb, step, n);
        return writeBack >= 0 ? writeBack : last;
    }

    /// <summary>
    /// Bytes per parameter the engine's resident trainer moves for Σg² before its device update (every precision takes it:
    /// clipping, the fp16 scaler and the non-finite check read it). On a GPU: fp32 sums of squares of 1024-element rows by one
    /// kernel that reads the gradient once, 2 B in bf16 or fp16, 4 B in fp32 (fp32 training, or the fp32 sums mixed precision
    /// keeps under accumulation); before that kernel (2026-12-07) a bf16 gradient was widened in chunks (10 B) by three
    /// launches per 8 M elements. On a CPU, fp64 lanes over the gradient where it lies (GradientNorms.HostSum: 2 or 4 B); an
    /// fp16 gradient, which that path does not take, through an fp64 copy and its square (2 + 32 B). Measured on the H100,
    /// gpt2-xl micro-batch 8: the optimizer phase 38 ms with fp64 copies, 27 ms with row norms by tensor ops, against 18 priced
    /// without Σg².
    /// DeepSpeed's fused Adam takes its norm elsewhere (the eager figures hold it): nothing here.
    /// </summary>
    private int GradientNormBytes =>
        _s.Executor != ExecutorKind.Aios ? 0
        : (FloatGradients ? 4 : 2) + (!_hw.HasGpu && _s.Precision == Precision.Fp16 && !FloatGradients ? 32 : 0);

    /// <summary>
    /// The pass of the CPU optimizer's kernel the resident update runs on a CPU device (aios executor), or null where its bytes
    /// stream at the device's rate: <c>DeviceTrainer</c> takes <c>HostAdamW</c> (CpuAdam on the tensors where they lie: bf16
    /// gradients read, the bf16 copy written in its pass; fp32 gradients in fp32 training or accumulation's fp32 sums) or, in
    /// 8-bit, <c>HostBlockwiseAdamW8bit</c>; fp16 with fp32 moments takes TorchSharp's operations (<see cref="EngineUpdatesFp16WithTorchOps"/>).
    /// </summary>
    private CpuUpdatePass? ResidentHostKernelPass =>
        _hw.HasGpu || _s.Executor != ExecutorKind.Aios || EngineUpdatesFp16WithTorchOps ? null
        // BlockwiseAdam reads fp32 gradients (a half-precision one is widened first, HostKernelSideBytes).
        : FloatGradients || _s.OptimizerState == OptimizerStateFormat.EightBit ? CpuUpdatePass.Fp32Gradients : CpuUpdatePass.Bf16Gradients;

    /// <summary>
    /// Bytes per parameter the CPU device's resident 8-bit update moves beside BlockwiseAdam's kernel, which reads fp32 gradients
    /// and writes a bf16 working copy in its pass: a bf16 or fp16 gradient widened to fp32 first (2 read, 4 written), and an fp16
    /// working copy cast from the master after it (4 read, 2 written). HostAdamW's fp32-state update does both in its pass: nothing.
    /// </summary>
    private int HostKernelSideBytes =>
        _s.OptimizerState != OptimizerStateFormat.EightBit ? 0 : (FloatGradients ? 0 : 6) + (_s.Precision == Precision.Fp16 ? 6 : 0);

    /// <summary>
    /// Whether the engine's resident update is TorchOpsAdamW's operations rather than its fused kernel, which takes fp32 and bf16
    /// only: fp16 training of the aios executor with fp32 moments (DeviceTrainer; on a CPU device too, where HostAdamW takes a
    /// bf16 working copy only).
    /// </summary>
    private bool EngineUpdatesFp16WithTorchOps => _s.Executor == ExecutorKind.Aios && _s.Precision == Precision.Fp16 && _s.OptimizerState == OptimizerStateFormat.Fp32;

    /// <summary>
    /// What fp16 adds to the engine's resident 8-bit update (DeviceAdamW8bit): the fp16 gradient widened to fp32 first (2 read, 4
    /// written; none for accumulation's fp32 sums) and the fp16 working copy cast from the master after it (4 read, 2 written).
    /// </summary>
    private int EightBitFp16Bytes =>
        _s.Executor == ExecutorKind.Aios && _s.Precision == Precision.Fp16 && _s.OptimizerState == OptimizerStateFormat.EightBit ? (FloatGradients ? 0 : 6) + 6 : 0;

    /// <summary>
    /// Bytes per parameter TorchOpsAdamW moves in fp16 training, one pass per operation: the gradient widened to fp32 (2 read, 4
    /// written; none for the fp32 sums of accumulation), unscaled (8), the weight decay (8), m's lerp (12), v's scale and addcmul
    /// (8 + 12), the denominator's square root, division and ε (3 × 8), addcdiv (16) and the fp16 copy (6): 100 B against the
    /// fused kernel's 28. Measured on an H100 VM (2026-12-07, gpt2-medium micro-batch 4): 13.8 ms against bf16's fused 4.1, a
    /// ratio of 3.4 where the bytes give 3.6.
    /// </summary>
    private int TorchOpsAdamBytes => (FloatGradients ? 0 : 6) + 8 + 8 + 12 + 8 + 12 + 3 * 8 + 16 + 6;

    /// <summary>Whether the resident update reads fp32 gradients: fp32 training, or mixed precision's fp32 sums under accumulation.</summary>
    private bool FloatGradients => _s.Precision == Precision.Fp32 || _s.GradAccumulation > 1;

    /// <summary>The optimizer after backward: on the GPU, or on the CPU over sub-groups (swapped from NVMe when the states live there).</summary>
    private void EmitOptimizer(int[] after)
    {
        long p = _m.TotalParameters;
        if (!CpuOptimizer)
        {
            long elements = _s.ZeroStage == ZeroStage.None ? p : Share(p);
            // Bytes per parameter a fused Adam touches: read weights, gradient, m, v; write weights, m, v
            // (mixed-precision ZeRO also writes the low-precision copy).
            // On a CPU device the update is the CPU optimizer's kernel, priced at its measured rate: only the passes beside it here.
            var hostKernel = ResidentHostKernelPass;
            int perParameter = hostKernel is not null ? HostKernelSideBytes + GradientNormBytes
                : (EngineUpdatesFp16WithTorchOps ? TorchOpsAdamBytes : _s.IsMixedPrecision && _s.ZeroStage != ZeroStage.None ? 30 : 28)
                    + EightBitFp16Bytes + GradientNormBytes;
            int step = Add(OpKind.OptimizerStep, ResourceKind.Compute, StepPhase.Optimizer, UnitId.Model, 0, after,
                elementwise: (double)elements * perParameter, parameters: elements, hostKernel: hostKernel);
            if (_s.ZeroStage is ZeroStage.Zero1 or ZeroStage.Zero2 && _gpus > 1)
                Add(OpKind.AllGather, ResourceKind.Collective, StepPhase.Optimizer, UnitId.Model, 0, [step], Bytes.OfElements(p, _pb));
            return;
        }

        var groups = OptimizerGroups();
        var tails = new List<int>(groups.Count);
        for (int i = 0; i < groups.Count; i++)
            // Only the first sub-group waits for every gradient; later ones follow it in their resource's order.
            tails.Add(EmitSubGroup(groups[i], StepPhase.Optimizer, 0, i == 0 ? after : []));
        if (_s.ZeroStage is ZeroStage.Zero1 or ZeroStage.Zero2 && _gpus > 1)
            Add(OpKind.AllGather, ResourceKind.Collective, StepPhase.Optimizer, UnitId.Model, 0, tails.ToArray(), Bytes.OfElements(p, _pb));
    }

    /// <summary>Units in the order the engine updates them after backward.</summary>
    private IEnumerable<int> OptimizerUnits() => _shape.OuterBlock
        ? [.. Enumerable.Range(0, _m.NumLayers), OuterUnit]
        : [-1, .. Enumerable.Range(0, _m.NumLayers), _m.NumLayers];

    /// <summary>Sub-groups of at most sub_group_size elements over <paramref name="elements"/> of <paramref name="unit"/>.</summary>
    private IEnumerable<SubGroupRef> SubGroupsWithin(UnitId unit, long elements)
    {
        long size = Math.Max(1, Math.Min(_s.SubGroupSize, Math.Max(1, elements)));
        int index = 0;
        for (long offset = 0; offset < elements; offset += size)
            yield return new SubGroupRef(unit, index++, offset, Math.Min(size, elements - offset));
    }

    /// <summary>Read (when its state or the gradients live on NVMe), update and write (its state on NVMe) of one sub-group; returns its last op.</summary>
    private int EmitSubGroup(SubGroupRef g, StepPhase phase, int mb, int[] start)
    {
        g = Placed(g);
        long n = g.Elements;
        bool nvme = StatesOnNvme(g);
        int k = _subGroupSteps.Count;
        int slot = k % OptimizerSlots;
        int read = -1;
        if (ReadsBeforeUpdate(nvme))
        {
            // One set of swap buffers serialises read → update → write; pipelined reading keeps a second set.
            int buffer = _s.PipelineRead ? (k >= 2 ? _subGroupSteps[k - 2] : -1) : _previousTail;
            int[] deps = buffer >= 0 ? [.. start, buffer] : start;
            var (highSlot, filledBy) = StagedHighHalves(g.Unit, nvme);
            if (filledBy >= 0 && !deps.Contains(filledBy)) deps = [.. deps, filledBy];
            read = Add(OpKind.OptimizerRead, ResourceKind.Nvme, phase, g.Unit, mb, deps,
                OptimizerRead(g.Unit, n, nvme, highSlot >= 0), parameters: n, subGroup: g, slot: slot, highHalvesSlot: highSlot);
            if (highSlot >= 0) NoteStagedReader(highSlot, read);
        }
        int waitForWrite = nvme && !_s.PipelineWrite ? _previousTail : -1;
        int[] stepDeps = read >= 0 ? Deps(read, waitForWrite) : waitForWrite >= 0 ? [.. start, waitForWrite] : start;
        int step = Add(OpKind.OptimizerStep, ResourceKind.Cpu, phase, g.Unit, mb, stepDeps, parameters: n, subGroup: g, slot: read >= 0 ? slot : -1);
        _subGroupSteps.Add(step);
        int tail = step;
        if (nvme)
            tail = Add(OpKind.OptimizerWrite, ResourceKind.Nvme, phase, g.Unit, mb, [step], OptimizerState(n),
                parameters: n, write: true, subGroup: g, slot: slot);
        int writeBack = EmitWriteBack(phase, g.Unit, g, mb, step, n, read >= 0 ? slot : -1);
        _previousTail = tail;
        return writeBack >= 0 ? writeBack : tail;
    }

    /// <summary>
    /// Writes updated low-precision parameters back to where they live; none when they live in CPU RAM (the engine's update writes
    /// them there). A unit on NVMe that max_in_cpu keeps in RAM is written there by the CPU; a device-resident unit's copy is uploaded.
    /// </summary>
    private int EmitWriteBack(StepPhase phase, UnitId unit, SubGroupRef? g, int mb, int step, long elements, int slot = -1)
    {
        // Delayed: the update leaves the working copies alone (the passes beside it read them); EmitMasterWriteBack writes them.
        if (DelaysUpdate) return -1;
        Bytes bytes = Bytes.OfElements(elements, _pb);
        if (_s.ParamOffload == OffloadTier.Nvme && ParamsInRam(unit))
            // The engine casts the sub-group's fp32 master into the unit's host copy: a pass over what the update just
            // touched, priced as no CPU time (no Adam parameters) and no drive traffic.
            return Add(OpKind.ParamWriteBack, ResourceKind.Cpu, phase, unit, mb, [step], bytes, subGroup: g, slot: slot);
        if (_s.ParamOffload == OffloadTier.Nvme)
            return Add(OpKind.ParamWriteBack, ResourceKind.Nvme, phase, unit, mb, [step], bytes, write: true, subGroup: g, slot: slot);
        if (_s.ParamOffload == OffloadTier.None && _hw.HasGpu && !_shape.CpuOptimizer)
            return Add(OpKind.ParamWriteBack, ResourceKind.H2d, phase, unit, mb, [step], bytes, subGroup: g);
        // The engine's update of a device-resident unit writes the training-precision copy into pinned staging in its Adam pass and
        // queues its copy to the device without waiting: link traffic after the update, which the unit's next use waits for (the
        // next step starts after this one's last operation). The delayed schedule's write-back uploads instead (returned above).
        // Outside the host's upload order (a fetch after the update in program order does not wait for it), on both sides. On a
        // CPU device the update wrote the unit in place: the operation is kept, moving nothing, so the engine's own program
        // (built without the hardware) numbers its operations as the simulator's does.
        if (_s.ParamOffload == OffloadTier.None && _shape.CpuOptimizer && (_hw.HasGpu || _shape.SlotCopiesOnCpu))
            return Add(OpKind.ResidentUpload, ResourceKind.QueuedH2d, phase, unit, mb, [step], _hw.HasGpu ? bytes : default, subGroup: g);
        return -1;
    }

    /// <summary>
    /// The delayed schedule's write-back of θ, as the engine's <c>WriteBackMaster</c> does it: once the step's passes and the
    /// update it ran have ended (it depends on every operation no other waits for, so on all of them), every unit's fp32
    /// master is cast into the working copy the passes read. Host traffic: the master read and the copy written,
    /// (4 + param bytes) per parameter; device-resident units are also uploaded, units on NVMe written to their files, and
    /// a master whose state lives on NVMe is read from there first (with its moments: the engine reads the whole state).
    /// Parameters in host RAM are double-buffered: the update wrote θ into the spare host copies (in its Adam pass, priced in the
    /// sub-group steps' Adam rate; the 8-bit update's fp16 copy in a pass of its own, priced beside it: StepCosts.EngineCopiesFp16Apart),
    /// so the write-back is a swap of the two copies and carries no bytes; the op stays so the engine's spans match the program one for one.
    /// </summary>
    private void EmitMasterWriteBack()
    {
        int[] sinks = Enumerable.Range(0, _ops.Count).Except(_ops.SelectMany(o => o.Deps)).ToArray();
        if (_s.ParamOffload == OffloadTier.Cpu)
        {
            Add(OpKind.MasterWriteBack, ResourceKind.Cpu, StepPhase.Optimizer, UnitId.Model, 0, sinks, Bytes.Zero);
            return;
        }
        long parameters = 0, upload = 0, nvmeRead = 0, nvmeWrite = 0;
        foreach (SubGroupRef g in OptimizerGroups().Select(Placed))
        {
            long n = g.Elements;
            parameters += n;
            if (StatesOnNvme(g)) nvmeRead += OptimizerState(n).Value;
            if (_s.ParamOffload == OffloadTier.None && _hw.HasGpu) upload += n * _pb;
            else if (ParamsOnNvme(g.Unit)) nvmeWrite += n * _pb;
        }
        Add(OpKind.MasterWriteBack, ResourceKind.Cpu, StepPhase.Optimizer, UnitId.Model, 0, sinks, Bytes.OfElements(parameters, 4 + _pb),
            traffic: new MasterWriteBackTraffic(new Bytes(upload), new Bytes(nvmeRead), new Bytes(nvmeWrite)));
    }
}

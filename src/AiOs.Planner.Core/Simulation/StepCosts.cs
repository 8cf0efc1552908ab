using AiOs.Planner.Hardware;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Simulation;

/// <summary>
/// Durations of operations on one machine: the simulator's only source of time. Shared devices give one
/// GPU process its share: a node's drives, CPU and network split evenly among its GPU processes, and GPUs
/// behind one PCIe switch split its bandwidth.
/// </summary>
public sealed class StepCosts
{
    private readonly HardwareProfile _hw;
    private readonly ComputeModel _model;
    /// <summary>The CPU's fitted layer costs when the CPU is the training device and no model was given; else null.</summary>
    private readonly CpuLayerCompute? _cpuLayer;
    /// <summary>The engine's fitted GPU kernels when the <c>aios</c> executor runs on a GPU whose profile has them; else null.</summary>
    private readonly EngineKernels? _engine;
    /// <summary>The model's layer kind's work over the main kind's fit (<see cref="EngineKernels.WorkRatiosFor"/>): forward and recompute, backward.</summary>
    private readonly KindWork _kindWork = KindWork.Same;
    /// <summary>
    /// Replayed layers' forward and backward time beyond their products at this run's shape, ms per GB of the forward's saved
    /// bytes (<see cref="EngineKernels.GraphWork"/>); null: none, none for the model's layer kind, or no replays.
    /// </summary>
    private readonly (double ForwardMsPerGb, double BackwardMsPerGb)? _graphWork;
    private readonly SimDuration _launchFloor, _stepOverhead;
    /// <summary>Dispatch floors of a forward, a recompute and a backward (see <see cref="Floor"/>).</summary>
    private readonly SimDuration _forwardFloor, _recomputeFloor, _backwardFloor;
    /// <summary>The layer passes' floors beside the CPU update (<see cref="BesideUpdateFloors"/>); equal to the floors above where none apply.</summary>
    private readonly SimDuration _besideForwardFloor, _besideRecomputeFloor, _besideBackwardFloor;
    /// <summary>The engine's ratios of floors beside the CPU update (<see cref="EngineKernels.BesideUpdateFloorRatios"/>), for an offloaded run.</summary>
    private readonly LayerwiseFloorRatios? _besideRatios;
    /// <summary>The dispatch floor of the head's forward (the engine's records autograd; PyTorch eager's is a forward).</summary>
    private readonly SimDuration _headFloor;
    /// <summary>The dispatch floor of the head's backward: the layers' backward floor, except where they replay CUDA graphs and the head does not.</summary>
    private readonly SimDuration _headBackwardFloor;
    /// <summary>
    /// Whether the compute operations are priced as the engine's trainers run them (<see cref="Pipelined"/>): the host
    /// launches each unit's kernels ahead of the device and waits for it only at the loss and before the update, so each
    /// operation takes its own floor where the device has caught up and only its work where the host is ahead. PyTorch
    /// eager pays one dispatch deficit per step instead (<see cref="DispatchDeficit"/>).
    /// </summary>
    /// <remarks>
    /// The layer-by-layer trainer too: its compute thread waits for a copy only where the program says (a stall), and its
    /// launches otherwise run ahead as the resident trainer's do. Priced with one deficit on the step's first operation,
    /// its launch-bound steps (micro-batch 1) put every floor in series before the copies they overlap: gpt2-large at
    /// micro-batch 1 × 4, parameters and optimizer in RAM, overlapped, was planned +32.5% on an H100 VM (2026-12-06, call
    /// 4 of the thirteenth session) and +4.9% with the floors per operation. Not priced: a stall for an upload that waits on
    /// an NVMe read spends the host's lead (the clocks here keep it), and the floors, measured in the resident trainer's
    /// steps, leave out the layer-by-layer trainer's few extra launches per unit (the pack and the device Σg²).
    /// </remarks>
    private readonly bool _floorPerOperation;
    /// <summary>
    /// Whether the host waits for the device at each micro-batch's loss (<see cref="Pipelined"/>): the layer-by-layer trainer
    /// reads it there (a non-finite loss must stop the CPU updates that start during backward); the resident trainer sums the
    /// losses on the device and reads them with the update's gradient norms (since 2026-12-07: gpt2 micro-batch 8 on an H100
    /// VM, the backward 15.5–16.3 → 11.4 ms, the step 31.7–33.2 → 27.8–28.2 ms).
    /// </summary>
    private readonly bool _lossWaits;
    /// <summary>The engine's compute operations' durations by operation id (<see cref="Pipelined"/>); null for PyTorch eager or without a program.</summary>
    private readonly Dictionary<int, SimDuration>? _pipelined;
    /// <summary><see cref="_pipelined"/> with the plain floors (before the floors beside the update): <see cref="WorkAlone"/>'s.</summary>
    private readonly Dictionary<int, SimDuration>? _pipelinedAlone;
    /// <summary>Host dispatch time the device waits for beyond its own work in one step (see <see cref="DispatchDeficit"/>); zero without a program.</summary>
    private readonly SimDuration _dispatchDeficit;
    private readonly FlopRate _matmul;
    /// <summary>
    /// The engine's priced rates, efficiency included (<see cref="EngineKernels.MatmulRateFor"/>): a decoder layer's at the
    /// program's model width and a micro-batch's tokens, and the head's and embedding's; zero without the engine's kernels.
    /// </summary>
    private readonly FlopRate _layerRate, _outerRate;
    private readonly int _layerRateHidden;
    private readonly Precision _precision;
    private readonly Optim.OptimizerStateFormat _optimizerState;
    private readonly long _microBatchTokens;
    private readonly Bandwidth _deviceMemory, _h2d, _d2h, _nvmeRead, _nvmeWrite, _gpuLink, _network;
    /// <summary>Activation checkpoint copies (cpu_checkpointing): pinned in the engine's shape (its host checkpoint buffers are page-locked), as other copies otherwise.</summary>
    private readonly Bandwidth _checkpointH2d, _checkpointD2h;
    /// <summary>Copies beside the CPU update (<see cref="BesideUpdate"/>): whether any, whether only backward's, and the share of each direction's rate.</summary>
    private readonly bool _transfersBesideUpdate, _onlyBackwardBesideUpdate;
    private readonly double _h2dShareBesideUpdate = 1, _d2hShareBesideUpdate = 1;
    private readonly double _adamPerSecond;
    /// <summary>The rate of an update whose state is in RAM with no swap slot (<see cref="Operation.Slot"/> −1): the engine's bf16 path where its gradients are bf16 in RAM, whatever tier the rest of the optimizer has; its fp16 pass in fp16 training (<see cref="EngineCpuUpdatePass"/>).</summary>
    private readonly double _adamInRamPerSecond;
    /// <summary>Whether each CPU update also pays the fp16 copy's own pass, 6 B per parameter over the host (<see cref="EngineCopiesFp16Apart"/>).</summary>
    private readonly bool _fp16CopyApart;
    /// <summary>Seconds every CPU OptimizerStep costs on top of its parameters: one update call's fixed cost (<see cref="CpuSpec.OptimizerCallOverheadS"/>).</summary>
    private readonly double _optimizerCallSeconds;
    /// <summary>Seconds each updated parameter's CPU update takes longer for the copies (<see cref="CopyInterference"/>; 0 where not measured) and the gradient sums (<see cref="AddsBesideUpdates"/>) beside it.</summary>
    private readonly double _contendedSecondsPerParameter;

    /// <summary>The engine's parallel passes over host memory (the Σg² pass of a later micro-batch's download, and of the only one with several ranks).</summary>
    private readonly HostPass _hostPass;
    /// <summary>The gradient-sum pass of a later micro-batch's download (<see cref="HostPass.AddOf"/>).</summary>
    private readonly HostPass _hostAdd;
    /// <summary>The share of its rate the gradient-sum pass keeps beside the GPU's copies (<see cref="HostLinkSpec.HostAddShareBesideCopies"/>); 1 on a CPU device or where not measured.</summary>
    private readonly double _hostAddShare = 1;
    /// <summary>What the add pass's time is multiplied by beside the copies (<see cref="HostAddFactor"/>); 1 where no share applies.</summary>
    private readonly double _hostAddFactor = 1;
    private readonly int _gpusPerNode, _nodes;

    /// <summary>
    /// Costs on <paramref name="hw"/> for <paramref name="s"/>; <paramref name="nvmeWorkingSet"/> is what the node's
    /// swap files hold (it sets the drives' swap rates, see <see cref="DriveSpec.SwapReadRate"/>).
    /// </summary>
    /// <remarks>
    /// With <paramref name="program"/>, the step's compute also pays the host's dispatch: a launch-bound step (small
    /// micro-batch) takes the sum of its units' launch floors rather than the sum of their device work.
    /// </remarks>
    public StepCosts(HardwareProfile hw, TrainingSettings s, int gpusPerNode, int nodes, Bytes nvmeWorkingSet, ComputeModel? model = null,
        StepProgram? program = null)
    {
        _hw = hw;
        // An explicit compute model wins; otherwise a CPU-only machine uses its own fitted constants (of the training precision) when it has them.
        _cpuLayer = hw.HasGpu || model is not null ? null : hw.Cpu.LayerComputeFor(s.Precision);
        // The executor decides whose kernels are priced: the engine's fitted ones (aios) or PyTorch eager's (deepspeed).
        _engine = hw.HasGpu && model is null && s.Executor == ExecutorKind.Aios ? hw.Gpu!.EngineKernels : null;
        // PyTorch eager's constants are the machine's: the profile's eager section when it has one, else the defaults.
        _model = model ?? (_engine is null && hw.HasGpu ? ComputeModel.For(hw.Gpu!.EagerCompute) : ComputeModel.Default);
        // Floors and the per-step cost apply on a GPU; a CPU's fitted overhead already holds its dispatch.
        (_launchFloor, _stepOverhead) = !hw.HasGpu ? (SimDuration.Zero, SimDuration.Zero)
            : _engine is { } k ? (k.LayerLaunchFloor, k.StepOverhead)
            : (_model.LayerLaunchFloor, _model.StepOverhead);
        bool offloads = s.ParamOffload != OffloadTier.None || s.OptimizerOffload != OffloadTier.None || s.EffectiveGradientOffload != OffloadTier.None;
        if (_engine is { } e && hw.HasGpu)
        {
            // The layer-by-layer engine always runs forward without autograd and recomputes; the resident one records
            // autograd in forward unless it checkpoints.
            bool forwardRecords = !offloads && !s.ActivationCheckpointing;
            // The floors of the model's layer kind (an RMSNorm, rotary, SwiGLU layer launches more kernels than GPT-2's):
            // measured for it when the profile has them, else the main kind's (the plan says so, EngineFloorsNote).
            var floors = e.FloorsFor(program?.Model);
            // Likewise the work of its layers: the main kind's fit times the kind's measured ratio (1 where not measured).
            if (program?.Model is { } m) _kindWork = e.WorkRatiosFor(m);
            (_forwardFloor, _recomputeFloor, _backwardFloor) = (forwardRecords ? floors.Autograd : floors.Forward, floors.Autograd, floors.Backward);
            // The layer-by-layer trainer's passes, measured against the resident trainer's in both trainers' steps: its
            // forward and recompute ran about 1.4× the resident floors on two H100 VMs (2026-12-06).
            if (offloads && e.LayerwiseFloorRatios is { } lw)
                (_forwardFloor, _recomputeFloor, _backwardFloor) = (Scaled(_forwardFloor, lw.Forward.Value), Scaled(_recomputeFloor, lw.Recompute.Value), Scaled(_backwardFloor, lw.Backward.Value));
            if (offloads) _besideRatios = e.BesideUpdateFloorRatios;
            // --cuda-graphs: each layer's forward and backward is one graph replay (the resident trainer, no recompute); the
            // head still runs eagerly, so it keeps its floors.
            _headBackwardFloor = _backwardFloor;
            if (CudaGraphRule.Replays(s))
            {
                (_forwardFloor, _backwardFloor) = (e.GraphReplayFloor, e.GraphReplayFloor);
                // Their work as measured on replays of the layer at this shape, where the profile has it for this layer kind.
                if (e.GraphWork is { } g && program?.Model is { } replayed && g.Prices(replayed))
                    _graphWork = g.At(replayed.HiddenSize, (long)s.MicroBatch * s.SeqLen);
            }
            _headFloor = floors.Autograd;
            _launchFloor = floors.Forward;
            _floorPerOperation = true;
            _lossWaits = offloads;
        }
        else
        {
            // PyTorch eager: a checkpointed recompute re-enters autograd and the checkpoint's bookkeeping, RecomputeLaunchFloors
            // floors; the head's forward is an ordinary forward.
            var recompute = hw.HasGpu ? _model.RecomputeLaunchFloor : SimDuration.Zero;
            (_forwardFloor, _recomputeFloor, _backwardFloor, _headFloor) = (_launchFloor, recompute, _launchFloor * 2, _launchFloor);
            _headBackwardFloor = _backwardFloor;
        }
        _gpusPerNode = gpusPerNode;
        _nodes = nodes;
        _precision = s.Precision;
        _optimizerState = s.OptimizerState;
        _microBatchTokens = (long)s.MicroBatch * s.SeqLen;
        if (hw.HasGpu)
        {
            _matmul = hw.Gpu!.MatmulRate(s.Precision);
            if (_engine is { } ek)
            {
                _layerRateHidden = program?.Model.HiddenSize ?? 0;
                _layerRate = ek.MatmulRateFor(s.Precision, true, _layerRateHidden, _microBatchTokens, _matmul);
                _outerRate = ek.MatmulRateFor(s.Precision, false, _layerRateHidden, _microBatchTokens, _matmul);
            }
            _deviceMemory = Bandwidth.FromGBps(hw.Gpu.MemoryBandwidthGbps.Value);
            var link = hw.HostLink!;
            int sharing = Math.Min(link.GpusPerRoot, gpusPerNode);
            // Offloaded parameters and gradients move through pinned buffers when pin_memory is set; NVMe swaps always do.
            bool pinned = s.PinMemory || s.ParamOffload == OffloadTier.Nvme;
            _h2d = link.H2d(pinned) / sharing;
            _d2h = link.D2h(s.PinMemory || s.OptimizerOffload == OffloadTier.Nvme) / sharing;
            _gpuLink = hw.GpuLink?.Rate ?? link.H2d(pinned: true) / sharing;
            bool pinnedCheckpoints = program?.Shape.PrefetchesCheckpoints ?? false;
            (_checkpointH2d, _checkpointD2h) = pinnedCheckpoints ? (link.H2d(pinned: true) / sharing, link.D2h(pinned: true) / sharing) : (_h2d, _d2h);
        }
        else
        {
            _matmul = hw.Cpu.MatmulRateFor(s.Precision);
            _deviceMemory = hw.Cpu.MemoryBandwidth;
            _h2d = _d2h = _gpuLink = _checkpointH2d = _checkpointD2h = hw.Cpu.MemoryBandwidth;
        }
        _network = hw.Network?.Rate ?? new Bandwidth(0);
        // Training's NVMe traffic is swap traffic: the drives' measured swap rates (the curves where none were measured).
        double read = hw.Drives.Sum(d => d.SwapReadRate(s.Aio, nvmeWorkingSet).BytesPerSecond);
        double write = hw.Drives.Sum(d => d.SwapWriteRate(s.Aio, nvmeWorkingSet).BytesPerSecond);
        _nvmeRead = new Bandwidth(read / gpusPerNode);
        _nvmeWrite = new Bandwidth(write / gpusPerNode);
        _adamPerSecond = hw.Cpu.AdamRateFor(s.OptimizerState, EngineUpdatePass(s)) / gpusPerNode;
        _adamInRamPerSecond = hw.Cpu.AdamRateFor(s.OptimizerState, EngineCpuUpdatePass(s, EngineUpdatesBf16InRam(s))) / gpusPerNode;
        _optimizerCallSeconds = hw.Cpu.OptimizerCallOverhead;
        _hostPass = HostPass.Of(hw.Cpu, gpusPerNode);
        // The engine's CPU update writes bf16 and fp16 working copies inside CpuAdam's pass; the 8-bit update writes fp16 ones in
        // a pass of its own over the updated master (PrecisionCast.ToFp16, in fixed chunks on the CPU workers): 4 + 2 B per parameter.
        _fp16CopyApart = EngineCopiesFp16Apart(s);
        _hostAdd = HostPass.AddOf(hw.Cpu, gpusPerNode);
        if (hw.HasGpu && hw.HostLink?.HostAddShareBesideCopies is { } share) _hostAddShare = share.Value;
        double halfRate = _model.MatmulHalfRateHidden;
        MatmulEfficiencyOf = _cpuLayer is { } fitted ? _ => fitted.MatmulEfficiency.Value
            : _engine is { } kernels ? _ => kernels.MatmulEfficiency.Value
            : h => h / (h + halfRate);
        (_besideForwardFloor, _besideRecomputeFloor, _besideBackwardFloor) = (_forwardFloor, _recomputeFloor, _backwardFloor);
        // Before the terms beside the updates: the adds in their window take the share they keep beside the copies.
        if (_hostAddShare < 1) _hostAddFactor = program is null ? 1 / _hostAddShare : HostAddFactor(program);
        if (program is not null)
        {
            if (_floorPerOperation) _pipelined = _pipelinedAlone = Pipelined(program);
            _dispatchDeficit = DispatchDeficit(program);
            if (TransfersBesideUpdate(program, s, hw) is { } backwardOnly)
            {
                _transfersBesideUpdate = true;
                _onlyBackwardBesideUpdate = backwardOnly;
                (_h2dShareBesideUpdate, _d2hShareBesideUpdate) = (hw.HostLink!.H2dShareBesideCpuUpdate, hw.HostLink.D2hShareBesideCpuUpdate);
                var beside = BesideUpdates.Of(this, program);
                _contendedSecondsPerParameter = CopyInterference(beside, s, hw) + AddsBesideUpdates(beside, s);
                if (_floorPerOperation && _besideRatios is { } ratios && _pipelined is not null)
                {
                    (_besideForwardFloor, _besideRecomputeFloor, _besideBackwardFloor) = BesideUpdateFloors(program, ratios);
                    _pipelined = Pipelined(program);
                }
            }
        }
    }

    /// <summary>
    /// The add pass beside the copies: it keeps <see cref="_hostAddShare"/> of its rate while they run, and the copies cover
    /// it for at most their own length, so the slowdown is applied in proportion, as the update's floors beside it are:
    /// <c>1 + (1 ÷ share − 1) · min(1, copies ÷ adds)</c>, the copies being the step's host-link operations at their rates and
    /// the adds the step's add passes at the host-only rate.
    /// </summary>
    private double HostAddFactor(StepProgram program)
    {
        double copies = 0, adds = 0;
        foreach (var op in program.Ops)
        {
            if (op.HostAdd.Adds) adds += _hostAdd.Time(op.HostAdd.Elements, op.HostAdd.AddBytesPerElement, HostSplit.Even).Seconds;
            if (op.Resource is ResourceKind.H2d or ResourceKind.QueuedH2d or ResourceKind.D2h)
                copies += (op.Bytes / (op.Resource == ResourceKind.D2h ? _d2h : _h2d)).Seconds;
        }
        return 1 + (1 / _hostAddShare - 1) * (adds > 0 ? Math.Min(1, copies / adds) : 1);
    }

    /// <summary>
    /// Whether the schedule runs host↔device copies while the CPU updates (null: never): the overlapped schedule during
    /// backward (true: only there), the delayed one throughout (false). The DeepSpeed schedule updates after backward, and
    /// so does the delayed schedule's first step (its warm-up: nothing is pending, so its update runs after its passes).
    /// </summary>
    private static bool? TransfersBesideUpdate(StepProgram program, TrainingSettings s, HardwareProfile hw) =>
        !hw.HasGpu || s.Schedule == StepSchedule.DeepSpeed || (s.Schedule == StepSchedule.Delayed && program.FirstStep)
        || !program.Ops.Any(o => o.Resource == ResourceKind.Cpu && o.Kind == OpKind.OptimizerStep) ? null
        : s.Schedule != StepSchedule.Delayed;

    /// <summary>
    /// The share of a copy's rate left to it beside the CPU update (<see cref="HostLinkSpec.H2dShareBesideCpuUpdate"/>):
    /// the update itself is priced at its rate alone (see <see cref="Duration"/>'s remarks). Measured on the
    /// H100 VM, 2026-12-06: gpt2-xl's delayed backward (parameters and optimizer in RAM, 11 GB limit) took 340 ms beside the
    /// update against 200 ms in the step without one, and a resident run's did not move beside a memory-bound CPU load, so
    /// the copies, not the kernel launches, are what slows (docs/validation/gpu-2026-12-06-session12.md).
    /// </summary>
    private double BesideUpdate(Operation op, double share) => IsBesideUpdate(op) ? share : 1;

    /// <summary>Whether the schedule runs <paramref name="op"/> (a copy) while the CPU updates (<see cref="TransfersBesideUpdate"/>).</summary>
    private bool IsBesideUpdate(Operation op) => _transfersBesideUpdate && (!_onlyBackwardBesideUpdate || op.Phase == StepPhase.Backward);

    /// <summary>Bytes of host memory the engine's bf16 CPU Adam moves per parameter (read master, m, v and the bf16 gradient; write master, m, v and the bf16 copy).</summary>
    public const int AdamHostBytesPerParameter = 28;

    /// <summary>Bytes the engine's fp16 CPU Adam moves per parameter: master, m, v and the fp32 gradient sum read; master, m, v and the fp16 copy written.</summary>
    public const int Fp16AdamHostBytesPerParameter = 30;

    /// <summary>Bytes the 8-bit update moves per parameter: fp32 master and gradient read, master written, one code per moment read and written, the bf16 copy written (scales left out).</summary>
    public const int EightBitAdamHostBytesPerParameter = 18;

    /// <summary>
    /// Where the schedule runs the CPU updates beside the GPU's copies (overlapped: during backward; delayed: the whole
    /// step), each update is lengthened by its share (by parameters) of the copies' bytes × the measured traffic the update
    /// loses per copied byte (<see cref="HostLinkSpec.CpuUpdateBytesLostPerCopiedByte"/>) ÷ its own traffic rate (the
    /// calibrated rate × the bytes its pass moves: <see cref="UpdateTrafficRate"/>). Not measured: no lengthening. The figure is measured, not
    /// assumed, because hosts differ: on one H100 VM (2026-12-06, sixteenth session) the updates beside the copies ran at
    /// the rate calibrated alone (3.8–4.2 against 3.89 G params/s), and pricing a full byte per copied byte (the assumption
    /// until then) put those rows 9–21% slow; on the next (seventeenth session) the delayed gpt2-xl's updates ran 4.2–4.3
    /// beside the copies against 4.7–5.0 in the DeepSpeed schedule's steps beside nothing, and the plan without the term was
    /// 19% fast (docs/validation/gpu-2026-12-06-session17.md). NVMe traffic (a few GB/s) is not counted as copied bytes.
    /// Only the copies inside the updates count (<see cref="BesideUpdates"/>).
    /// </summary>
    private double CopyInterference(BesideUpdates b, TrainingSettings s, HardwareProfile hw)
    {
        if (hw.HostLink?.CpuUpdateBytesLostPerCopiedByte is not { } lost || lost.Value <= 0) return 0;
        if (b.Updated == 0 || b.Transferred == 0) return 0;
        return lost.Value * b.Transferred * b.Coverage / UpdateTrafficRate(s) / b.Updated;
    }

    /// <summary>
    /// Where the schedule runs the gradient sums beside the CPU updates (overlapped: the last micro-batch's adds, which feed
    /// the layers' updates as backward goes; delayed: every add of the next step), each update is lengthened by its share
    /// (by parameters) of the adds' bytes (with the last micro-batch's Σg² pass over the sums) ÷ its own traffic rate: one byte of the update's traffic lost per byte the adds
    /// move, the two being passes over the same host memory on the same CPU workers. Only the adds inside the updates count,
    /// as for the copies (<see cref="CopyInterference"/>). Not calibrated: measured on an H100 VM (2026-12-07, twentieth
    /// session), gpt2-large mb 1 × 4 overlapped ran its updates beside the adds at 5.5 ms a layer against 3.95 planned alone,
    /// and a layer's add moves 197 MB, 1.4 ms at the update's 140 GB/s of traffic: 5.35 ms
    /// (docs/validation/gpu-2026-12-07-session20.md).
    /// </summary>
    private double AddsBesideUpdates(BesideUpdates b, TrainingSettings s) =>
        b.Updated == 0 || b.AddBytes == 0 ? 0 : b.AddBytes * b.Coverage / UpdateTrafficRate(s) / b.Updated;

    /// <summary>
    /// The update's own traffic in bytes per second: its rate as priced (the state's format) × the bytes it moves per
    /// parameter (28 with fp32 state, 30 for the engine's fp16 pass; 18 with 8-bit state, whose kernel the bf16 path's figures
    /// describe less well).
    /// </summary>
    private double UpdateTrafficRate(TrainingSettings s) => _adamPerSecond * UpdateBytesPerParameter(s);

    /// <summary>Bytes of host memory the CPU update of <paramref name="s"/> moves per parameter, by its state's format and pass.</summary>
    internal static int UpdateBytesPerParameter(TrainingSettings s) =>
        s.OptimizerState == Optim.OptimizerStateFormat.EightBit ? EightBitAdamHostBytesPerParameter
        : EngineUpdatePass(s) == CpuUpdatePass.Fp16Copy ? Fp16AdamHostBytesPerParameter
        : AdamHostBytesPerParameter;

    /// <summary>
    /// What runs beside the step's CPU updates in time (<see cref="RunsBesideUpdates"/>), each priced as the step prices it
    /// before these terms (the copies at their shares beside the update, the adds at theirs beside the copies): the copies'
    /// bytes, the gradient sums' bytes, and the window they spread over, at least as long as the busier copy direction, the
    /// GPU work, the NVMe traffic and the sums of the same part of the step (the program's order keeps the copies and adds
    /// beside the passes that make and use them). An update shorter than that window meets its share of them:
    /// <see cref="Coverage"/> = <c>min(1, update ÷ window)</c>. So the update never loses more than the copy or add rate
    /// allows, however long the step's copies and passes run (large micro-batches, NVMe steps).
    /// </summary>
    private readonly record struct BesideUpdates(long Updated, long Transferred, double AddBytes, double Coverage)
    {
        public static BesideUpdates Of(StepCosts costs, StepProgram program)
        {
            long transferred = 0, updated = 0;
            double h2d = 0, d2h = 0, nvme = 0, compute = 0, update = 0, sums = 0, addBytes = 0;
            int last = LastMicroBatch(program), hidden = program.Model.HiddenSize;
            foreach (var op in program.Ops)
            {
                if (op.Resource == ResourceKind.Cpu && op.Kind == OpKind.OptimizerStep)
                {
                    updated += op.Parameters;
                    // Priced as Duration prices it (call cost, the rate of its state's tier), before these terms exist.
                    update += costs.Duration(op, hidden).Seconds;
                }
                else if (!costs.RunsBesideUpdates(op, last)) continue;
                else if (op.Resource is ResourceKind.H2d or ResourceKind.QueuedH2d or ResourceKind.D2h)
                {
                    transferred += op.Bytes.Value;
                    if (op.Resource != ResourceKind.D2h) h2d += costs.Duration(op, hidden).Seconds;
                    else d2h += costs.Duration(op, hidden).Seconds;
                    // With several ranks a download does its own add and Σg² pass (no host-sums thread).
                    addBytes += op.HostAdd.HostBytes;
                }
                else if (op.Resource == ResourceKind.Nvme && costs.HasDrives) nvme += costs.Duration(op, hidden).Seconds;
                else if (op.Resource == ResourceKind.HostSums)
                {
                    sums += costs.Duration(op, hidden).Seconds;
                    addBytes += op.HostAdd.HostBytes;
                }
                else if (op.Resource == ResourceKind.Compute && op.Kind != OpKind.OptimizerStep) compute += costs.Duration(op, hidden).Seconds;
            }
            double window = Math.Max(Math.Max(Math.Max(compute, nvme), Math.Max(h2d, d2h)), sums);
            return new BesideUpdates(updated, transferred, addBytes, window > update ? update / window : 1);
        }
    }

    private static int LastMicroBatch(StepProgram program) => program.Ops.Count == 0 ? 0 : program.Ops.Max(o => o.MicroBatch);

    /// <summary>
    /// Whether <paramref name="op"/> runs while CPU updates do, in time: the delayed schedule's pending update runs beside the
    /// whole next step; the overlapped schedule updates as the last micro-batch's gradients land, so only that micro-batch's
    /// backward (<paramref name="lastMicroBatch"/>) runs beside it, not the earlier micro-batches' of an accumulation.
    /// </summary>
    private bool RunsBesideUpdates(Operation op, int lastMicroBatch) => IsBesideUpdate(op) && (!_onlyBackwardBesideUpdate || op.MicroBatch == lastMicroBatch);

    /// <summary>
    /// Whether the engine's sub-groups whose state is in RAM (no swap slot) take the bf16 update: its gradients bf16 in RAM.
    /// With the optimizer in RAM that is every sub-group (<see cref="EngineAdamOnBf16Gradients"/>); with it on NVMe, those
    /// <c>--optimizer-ram-budget</c> keeps in RAM (OptimizerStates reads a sub-group's bf16 gradient straight from the store
    /// when it has no slot).
    /// </summary>
    internal static bool EngineUpdatesBf16InRam(TrainingSettings s) =>
        s.Executor == ExecutorKind.Aios && Memory.EngineMemory.HostGradientsInBf16(s) && s.EffectiveGradientOffload == OffloadTier.Cpu;

    /// <summary>
    /// Whether the CPU optimizer runs the engine's bf16 update (CpuAdam.StepBf16Gradients: bf16 gradients read from the
    /// gradient store, the bf16 copy written, 28 B per parameter): the aios executor with its gradients kept as bf16 in
    /// RAM (<see cref="Memory.EngineMemory.HostGradientsInBf16"/>) and its state in RAM. Otherwise CpuAdam reads fp32
    /// gradients (a swapped state's slot, an fp32 sum), and DeepSpeed's CPU Adam always does.
    /// </summary>
    internal static bool EngineAdamOnBf16Gradients(TrainingSettings s) => EngineUpdatesBf16InRam(s) && s.OptimizerOffload == OffloadTier.Cpu;

    /// <summary>
    /// The pass an engine CPU update over fp32 state runs: the bf16 one where <paramref name="bf16Gradients"/> (its sub-groups
    /// read bf16 gradients), the fp16 one in fp16 training where the update writes the working copy (CpuAdam casts it in its
    /// pass: <see cref="UpdateWritesWorkingCopy"/>), else the fp32-gradient one (and always for DeepSpeed). Two engine passes
    /// are approximated: bf16 training's update of fp32 sums (accumulation > 1) or of a swapped sub-group writes the bf16 copy
    /// in its pass (30 B) and is priced at the fp32-gradient figure (28 B, no copy); and with several ranks, device-resident
    /// shards take their copy apart from the update (ParameterSwapper.WriteShardOnDevice), priced here as the in-pass one.
    /// </summary>
    internal static CpuUpdatePass EngineCpuUpdatePass(TrainingSettings s, bool bf16Gradients) =>
        bf16Gradients ? CpuUpdatePass.Bf16Gradients
        : s.Executor == ExecutorKind.Aios && s.Precision == Precision.Fp16 && UpdateWritesWorkingCopy(s) ? CpuUpdatePass.Fp16Copy
        : CpuUpdatePass.Fp32Gradients;

    /// <summary>The pass the engine's CPU updates of the optimizer's own tier run (<see cref="EngineCpuUpdatePass"/> of <see cref="EngineAdamOnBf16Gradients"/>).</summary>
    internal static CpuUpdatePass EngineUpdatePass(TrainingSettings s) => EngineCpuUpdatePass(s, EngineAdamOnBf16Gradients(s));

    /// <summary>Fraction of the large-matmul rate a layer of hidden size h reaches (on a CPU with a layer fit, its fitted constant).</summary>
    public Func<double, double> MatmulEfficiencyOf { get; }

    /// <summary>Whether NVMe operations can be costed (the profile lists a drive).</summary>
    public bool HasDrives => _hw.Drives.Count > 0;

    private static SimDuration Scaled(SimDuration d, double factor) => SimDuration.FromSeconds(d.Seconds * factor);

    /// <summary>The time <paramref name="op"/> takes on its resource, alone.</summary>
    /// <remarks>
    /// A CPU update beside the GPU's copies is lengthened only by the measured interference (<see cref="CopyInterference"/>), and beside the gradient sums by their bytes (<see cref="AddsBesideUpdates"/>).
    /// Until the sixteenth session (2026-12-06) it was lengthened by the copies' bytes over CPU Adam's rate × 28 B, as if
    /// every copied byte displaced one of the update's; with calibration's Adam probe sized past the last-level cache that
    /// put an H100 VM's overlapped and delayed rows 9–21% slow (docs/validation/gpu-2026-12-06-session16.md), and the next
    /// VM's rows 19% fast without it: the figure is now calibrated per host. The copies' own share beside the update is
    /// measured too (<see cref="HostLinkSpec.H2dShareBesideCpuUpdate"/>).
    /// </remarks>
    public SimDuration Duration(Operation op, int hiddenSize) => op.Resource switch
    {
        ResourceKind.Compute => op.Kind == OpKind.OptimizerStep ? Optimizer(op)
            : PerStep(op, _pipelined is not null && _pipelined.TryGetValue(op.Id, out var pipelined) ? pipelined
                : _floorPerOperation ? SimDuration.Max(Compute(op, hiddenSize), Floor(op)) : Compute(op, hiddenSize)),
        ResourceKind.H2d or ResourceKind.QueuedH2d => op.Bytes / ((op.Kind == OpKind.ActivationFetch ? _checkpointH2d : _h2d) * BesideUpdate(op, _h2dShareBesideUpdate)),
        ResourceKind.D2h => op.Bytes / ((op.Kind == OpKind.ActivationOffload ? _checkpointD2h : _d2h) * BesideUpdate(op, _d2hShareBesideUpdate)) + HostAdd(op.HostAdd),
        ResourceKind.Nvme => op.Bytes / (op.IsWrite ? _nvmeWrite : _nvmeRead),
        ResourceKind.Cpu => op.Kind == OpKind.MasterWriteBack ? MasterWriteBack(op)
            : SimDuration.FromSeconds(CpuSecondsAlone(op) + op.Parameters * _contendedSecondsPerParameter),
        ResourceKind.Collective => Collective(op.Bytes),
        ResourceKind.HostSums => HostAdd(op.HostAdd),
        _ => throw new InvalidOperationException($"No cost for resource {op.Resource}."),
    };

    /// <summary>
    /// A compute or CPU operation's time without what depends on the knobs (pinning, AIO settings), for the tuner's lower
    /// bounds (never above <see cref="Duration"/>): a CPU update without what the copies and gradient sums beside it take
    /// from it (the window they spread over moves with the knobs); the delayed schedule's write-back as its host pass alone
    /// (its upload and NVMe traffic in series move with pinning and AIO); a unit pass with the plain dispatch floors (the
    /// floors beside the update grow with how much of the passes the update covers, which moves with its length).
    /// </summary>
    internal SimDuration WorkAlone(Operation op, int hiddenSize) => op.Resource switch
    {
        ResourceKind.Cpu => op.Kind == OpKind.MasterWriteBack ? WriteBackHostPass(op) : SimDuration.FromSeconds(CpuSecondsAlone(op)),
        ResourceKind.Compute when op.Kind != OpKind.OptimizerStep && _pipelinedAlone is not null && _pipelinedAlone.TryGetValue(op.Id, out var alone) => PerStep(op, alone),
        _ => Duration(op, hiddenSize),
    };

    /// <summary>A CPU operation's seconds at its rate alone: an update's call cost and its parameters at its state's tier's rate (a write-back cast into RAM: none).</summary>
    private double CpuSecondsAlone(Operation op) =>
        (op.Kind == OpKind.OptimizerStep ? _optimizerCallSeconds + (_fp16CopyApart ? _hostPass.Time(op.Parameters, 6).Seconds : 0) : 0)
        + op.Parameters / (op.Slot < 0 ? _adamInRamPerSecond : _adamPerSecond);

    /// <summary>
    /// Whether each CPU update of the engine writes the fp16 working copy in a pass of its own (<see cref="_fp16CopyApart"/>):
    /// fp16 training with 8-bit moments (their update writes bf16 copies only; CpuAdam casts fp16 ones chunk by chunk inside its
    /// pass, as it writes bf16), the optimizer offloaded and the parameters in RAM, or on the device under a schedule that writes
    /// them from the update (not the delayed one, whose MasterWriteBack casts device-resident units once per step and is priced
    /// there). Parameters on NVMe take the fp32 write-back in every precision (their ParamWriteBack operations).
    /// </summary>
    internal static bool EngineCopiesFp16Apart(TrainingSettings s) =>
        s.Executor == ExecutorKind.Aios && s.Precision == Precision.Fp16 && s.OptimizerState == Optim.OptimizerStateFormat.EightBit
        && s.OptimizerOffload != OffloadTier.None && UpdateWritesWorkingCopy(s);

    /// <summary>
    /// Whether the engine's CPU update writes the parameters' working copy from its pass (ParameterSwapper.HalfTarget): the
    /// parameters in RAM, or on the device under a schedule that writes them from the update (the delayed one casts
    /// device-resident units in its MasterWriteBack). Parameters on NVMe take the fp32 write-back instead.
    /// </summary>
    private static bool UpdateWritesWorkingCopy(TrainingSettings s) =>
        s.ParamOffload == OffloadTier.Cpu || s.ParamOffload == OffloadTier.None && s.Schedule != StepSchedule.Delayed;

    /// <summary>
    /// The layer passes' floors while the CPU updates beside them: the engine's CPU Adam takes every core but one, and the
    /// thread that launches the passes then runs slower (launch-bound passes of gpt2-medium at micro-batch 2 took 1.6× (forward)
    /// to 2–5× (backward) their time alone while the update ran, and their own time once it had ended; H100 VM, 2026-12-06,
    /// docs/validation/gpu-2026-12-06-session14.md). The measured ratios (<see cref="EngineKernels.BesideUpdateFloorRatios"/>)
    /// hold while the update runs; it covers the passes it runs beside for at most its own length, so each ratio is applied
    /// in proportion: <c>1 + (r − 1) · min(1, update ÷ passes)</c>, the update being the CPU's optimizer operations and the
    /// passes the compute operations beside it (<see cref="IsBesideUpdate"/>) as priced without the slowdown.
    /// </summary>
    private (SimDuration Forward, SimDuration Recompute, SimDuration Backward) BesideUpdateFloors(StepProgram program, LayerwiseFloorRatios r)
    {
        int hidden = program.Model.HiddenSize;
        double passes = 0, update = 0;
        foreach (var op in program.Ops)
        {
            if (op.Resource == ResourceKind.Compute && op.Kind != OpKind.OptimizerStep && IsBesideUpdate(op) && _pipelined!.TryGetValue(op.Id, out var d))
                passes += d.Seconds;
            else if (op.Resource == ResourceKind.Cpu && op.Kind == OpKind.OptimizerStep)
                update += Duration(op, hidden).Seconds;
        }
        double covered = passes > 0 ? Math.Min(1, update / passes) : 0;
        SimDuration Beside(SimDuration floor, Figure ratio) => Scaled(floor, 1 + (ratio.Value - 1) * covered);
        return (Beside(_forwardFloor, r.Forward), Beside(_recomputeFloor, r.Recompute), Beside(_backwardFloor, r.Backward));
    }

    /// <summary>
    /// The host dispatch floor of a unit pass: a layer's or the head's forward, recompute or backward (PyTorch eager:
    /// one floor, two for a backward; the engine: its measured floor of each kind, the head's forward recording autograd).
    /// The embedding (a lookup and an add: a few kernels) pays none.
    /// </summary>
    private SimDuration Floor(Operation op) =>
        op.Unit.Kind is UnitKind.Embedding or UnitKind.Outer ? SimDuration.Zero
        // The head's forward always records autograd (its loss is back-propagated at once).
        : op.Unit.Kind == UnitKind.Layer && IsBesideUpdate(op)
            ? op.Kind switch { OpKind.Backward => _besideBackwardFloor, OpKind.Recompute => _besideRecomputeFloor, _ => _besideForwardFloor }
        : op.Kind switch { OpKind.Backward when op.Unit.Kind == UnitKind.Head => _headBackwardFloor, OpKind.Backward => _backwardFloor, OpKind.Recompute => _recomputeFloor, _ when op.Unit.Kind == UnitKind.Head => _headFloor, _ => _forwardFloor };

    /// <summary>
    /// The step's fixed cost and its dispatch deficit ride on its first operation (the first micro-batch's embedding
    /// forward), present in every program.
    /// </summary>
    private SimDuration PerStep(Operation op, SimDuration d) =>
        op.Kind == OpKind.Forward && op.Unit.Kind is UnitKind.Embedding or UnitKind.Outer && op.MicroBatch == 0 ? d + _stepOverhead + _dispatchDeficit : d;

    /// <summary>
    /// How much longer the host takes to launch the step's units than the device takes to run them:
    /// <c>max(0, Σ launch floors − Σ device work)</c> over the compute operations. The host runs ahead of the device,
    /// so a step's compute takes <c>max(Σ work, Σ dispatch)</c>, not the sum of per-unit maxima: PyTorch eager gpt2 in
    /// bf16 takes 47.6 ms at micro-batch 1 and 47.5 ms at 4 (all dispatch), 66 ms at 8 (all work).
    /// </summary>
    private SimDuration DispatchDeficit(StepProgram program)
    {
        if (_launchFloor == SimDuration.Zero || _floorPerOperation) return SimDuration.Zero;
        int hidden = program.Model.HiddenSize;
        long work = 0, dispatch = 0;
        foreach (var op in program.Ops)
        {
            if (op.Resource != ResourceKind.Compute) continue;
            work += (op.Kind == OpKind.OptimizerStep ? Optimizer(op) : Compute(op, hidden)).Nanoseconds;
            if (op.Kind != OpKind.OptimizerStep) dispatch += Floor(op).Nanoseconds;
        }
        return new SimDuration(Math.Max(0, dispatch - work));
    }

    /// <summary>
    /// The engine's compute operations as its host and device run them: the host launches one unit's kernels
    /// after another (its floor, <see cref="Floor"/>) without waiting; the device runs them as they come, so a unit ends
    /// when its work is done after the previous unit's (<c>device + work</c>) but not before its last kernel was launched
    /// (<c>host</c>): <c>device = max(device + work, host)</c>, and its duration is how far it moved the device clock. The
    /// host waits for the device (<c>host = device</c>) where the engine reads a value back: the gradient norms before the
    /// update, and in the layer-by-layer trainer the loss after each micro-batch's forward (<see cref="_lossWaits"/>). So a launch-bound stretch
    /// takes its floors, a device-bound one its work, and work queued behind a long unit (the head's) hides the next
    /// units' launches: measured on the H100 VM (2026-12-05, gpt2 micro-batch 4), backward layers 11 to 5 ran in their
    /// 0.61 ms of work right after the head, the earlier ones at their 0.95 ms dispatch once that lead was spent.
    /// </summary>
    private Dictionary<int, SimDuration> Pipelined(StepProgram program)
    {
        int hidden = program.Model.HiddenSize;
        var durations = new Dictionary<int, SimDuration>();
        long host = 0, device = 0;
        OpKind previous = OpKind.Forward;
        foreach (var op in program.Ops)
        {
            if (op.Resource != ResourceKind.Compute) continue;
            // The layer-by-layer trainer reads the loss after each micro-batch's forward (the first operation after its forwards
            // finds the host caught up; a recompute after a backward, under checkpointing, does not wait); both read the norms
            // before the update.
            if (op.Kind == OpKind.OptimizerStep || (_lossWaits && previous == OpKind.Forward && op.Kind != OpKind.Forward)) host = device = Math.Max(host, device);
            previous = op.Kind;
            if (op.Kind == OpKind.OptimizerStep) continue;
            long before = device;
            host += Floor(op).Nanoseconds;
            device = Math.Max(device + Compute(op, hidden).Nanoseconds, host);
            durations[op.Id] = new SimDuration(device - before);
        }
        return durations;
    }

    /// <summary>
    /// The host work after a download's copy (<see cref="Operation.HostAdd"/>): a <see cref="OpKind.GradAccumulate"/> on the
    /// host-sums thread waits for the copy, then adds the staged gradients into the fp32 sum in one equal part per core (and
    /// after the last micro-batch reads the sum again for Σg², in fixed chunks); with several ranks the download itself does
    /// it and ends with that work. The first micro-batch has none (its Σg², at
    /// accumulation 1, comes from the device with the copy), but with several ranks, which download without copy streams,
    /// the Σg² pass alone (<see cref="HostAccumulation.SquaresOnly"/>). On a GPU the adds run while the copy engines move the
    /// parameters up and the gradients down through host memory: the add keeps the share of its rate
    /// <c>calibrate-gpu</c> measured beside pinned copies (<see cref="HostLinkSpec.HostAddShareBesideCopies"/>), in proportion
    /// to how much of the adds the copies cover (<see cref="HostAddFactor"/>; 0.6–0.7 of the host-only probe's rate is what the
    /// adds reached inside an H100 VM's steps, 2026-12-07, docs/validation/gpu-2026-12-07-session20.md).
    /// </summary>
    private SimDuration HostAdd(HostAccumulation add) =>
        add.Elements == 0 ? SimDuration.Zero
        : (!add.Adds ? SimDuration.Zero
            : _hostAddFactor == 1 ? _hostAdd.Time(add.Elements, add.AddBytesPerElement, HostSplit.Even)
            : Scaled(_hostAdd.Time(add.Elements, add.AddBytesPerElement, HostSplit.Even), _hostAddFactor))
            + (add.SumsSquares ? _hostPass.Time(add.Elements, add.SquaresBytes) : SimDuration.Zero);

    /// <summary>
    /// The delayed schedule's write-back of θ: one pass over the host at its memory-copy rate (the node's bandwidth shared by
    /// its GPU processes), and in series with it (the engine writes unit by unit, each write waiting for its cast) the
    /// uploads of device-resident units and the NVMe state reads and parameter-file writes.
    /// </summary>
    /// <summary>The write-back's pass over host memory at the node's bandwidth shared by its GPU processes.</summary>
    private SimDuration WriteBackHostPass(Operation op) => op.Bytes / (_hw.Cpu.MemoryBandwidth / _gpusPerNode);

    private SimDuration MasterWriteBack(Operation op)
    {
        var t = op.WriteBackTraffic;
        var host = WriteBackHostPass(op);
        var upload = t.Upload.Value > 0 ? t.Upload / _h2d : SimDuration.Zero;
        var read = t.NvmeRead.Value > 0 ? t.NvmeRead / _nvmeRead : SimDuration.Zero;
        var write = t.NvmeWrite.Value > 0 ? t.NvmeWrite / _nvmeWrite : SimDuration.Zero;
        return host + upload + read + write;
    }

    /// <summary>
    /// A resident update: the CPU optimizer's kernel at the profile's measured rate for its pass and state, with the passes beside
    /// it over host memory (<see cref="Operation.HostKernelPass"/>: a CPU device), else a streaming pass over device memory.
    /// </summary>
    private SimDuration Optimizer(Operation op)
    {
        if (op.HostKernelPass is not { } pass) return Streaming(op.ElementwiseBytes);
        double rate = _hw.Cpu.AdamRateFor(_optimizerState, pass) / _gpusPerNode;
        int besideBytes = op.Parameters > 0 ? (int)Math.Round(op.ElementwiseBytes / op.Parameters) : 0;
        return SimDuration.FromSeconds(op.Parameters / rate) + _hostPass.Time(op.Parameters, besideBytes);
    }

    /// <summary>A streaming pass over device memory: at the engine's measured rate (its fused AdamW's) where the profile has it, else the device's element-wise rate.</summary>
    private SimDuration Streaming(double bytes) =>
        _engine?.OptimizerGbps is { Value: > 0 } rate ? new Bytes((long)bytes) / Bandwidth.FromGBps(rate.Value) : Elementwise(bytes);

    private SimDuration Compute(Operation op, int hiddenSize) => Work(op, hiddenSize) + Sums(op);

    /// <summary>
    /// The resident engine's gradient landing beside a unit's work (<see cref="Operation.SumBytes"/>): streaming passes over
    /// device memory (<see cref="Streaming"/>); on a CPU without the engine's rate, at its fitted element-wise rate.
    /// </summary>
    private SimDuration Sums(Operation op) =>
        op.SumBytes <= 0 ? SimDuration.Zero
        : _engine?.OptimizerGbps is not { Value: > 0 } && _cpuLayer is { } cpu ? cpu.ElementwiseTime(new Bytes((long)op.SumBytes))
        : Streaming(op.SumBytes);

    private SimDuration Work(Operation op, int hiddenSize)
    {
        if (_engine is { } k)
        {
            // The engine's kernels: a backward op carries twice its forward's FLOPs and saved bytes. Its matmuls take twice
            // the forward's and the rest the fitted work ratio of the forward's rest; without that ratio (older profiles) the
            // whole takes the fitted backward/forward ratio. A recompute takes the recompute ratio of its forward.
            double share = op.Kind == OpKind.Backward ? 0.5 : 1;
            var products = FlopRate.TimeFor(op.Flops * share, MatmulRateOf(op, hiddenSize, k));
            bool layer = op.Unit.Kind == UnitKind.Layer, backward = op.Kind == OpKind.Backward;
            // A layer replayed from its CUDA graph: its products as eager (a backward twice the forward's) and the replays'
            // measured time beyond them per GB of the forward's saved bytes. No fixed term (it holds host time a replay does
            // not have), no kind ratio (the replays were timed on this kind: GraphWork.Prices) and no backward work ratio.
            if (layer && _graphWork is { } g && op.Kind is OpKind.Forward or OpKind.Backward)
            {
                double saved = op.ElementwiseBytes * share;
                return SimDuration.FromSeconds(backward
                    ? 2 * products.Seconds + GraphWork.Seconds(g.BackwardMsPerGb, saved)
                    : products.Seconds + GraphWork.Seconds(g.ForwardMsPerGb, saved));
            }
            // A decoder layer of another kind than the fit's: its measured ratio to the fit (the head and embedding are not
            // layers). Where the kind's difference was measured on its element-wise work alone, only that term takes it.
            double? onElementwise = !layer ? null : backward ? _kindWork.BackwardElementwise : _kindWork.ForwardElementwise;
            double kind = !layer || onElementwise is not null ? 1 : backward ? _kindWork.Backward : _kindWork.Forward;
            double rest = (onElementwise ?? 1) * k.ElementwiseTime(new Bytes((long)(op.ElementwiseBytes * share))).Seconds + k.LayerOverhead.Seconds;
            if (backward && k.BackwardWorkRatio is { } work)
                return SimDuration.FromSeconds(kind * (2 * products.Seconds + work.Value * rest));
            double ratio = op.Kind switch { OpKind.Backward => k.BackwardRatio.Value, OpKind.Recompute => k.RecomputeRatio.Value, _ => 1 };
            return SimDuration.FromSeconds(kind * (products.Seconds + rest) * ratio);
        }
        if (_cpuLayer is { } cpu)
        {
            // Constants fitted to this CPU's timed layers. A backward op carries twice its forward's FLOPs and saved
            // bytes; it takes the measured backward/forward ratio times its forward's time.
            bool backward = op.Kind == OpKind.Backward;
            double share = backward ? 0.5 : 1;
            var forward = FlopRate.TimeFor(op.Flops * share, _matmul * MatmulEfficiencyOf(hiddenSize))
                + cpu.ElementwiseTime(new Bytes((long)(op.ElementwiseBytes * share))) + cpu.LayerOverhead;
            var dense = cpu.VocabGradientTime(new Bytes(op.DenseGradientBytes));
            return (backward ? SimDuration.FromSeconds(forward.Seconds * cpu.BackwardRatio.Value) : forward) + dense;
        }
        // On a GPU the dense embedding gradient is a few memory passes at device bandwidth (well under a millisecond
        // for a 50k vocabulary), inside the fitted element-wise term; only the CPU path charges it separately.
        var matmul = FlopRate.TimeFor(op.Flops, _matmul * MatmulEfficiencyOf(hiddenSize));
        var elementwise = Elementwise(op.ElementwiseBytes * _model.ElementwiseTraffic);
        var overhead = op.Kind == OpKind.Backward ? _model.LayerOverhead * 2 : _model.LayerOverhead;
        return matmul + elementwise + overhead;
    }

    /// <summary>
    /// The rate, efficiency included, <paramref name="op"/>'s products are priced at (<see cref="EngineKernels.MatmulRateFor"/>):
    /// a decoder layer's at the kernels' measured rate for its shape and precision where they carry one, the embedding's and
    /// head's at the large-matmul rate and the efficiency the layers reach against it.
    /// </summary>
    private FlopRate MatmulRateOf(Operation op, int hiddenSize, EngineKernels k)
    {
        if (op.Unit.Kind != UnitKind.Layer) return _outerRate;
        return hiddenSize == _layerRateHidden ? _layerRate : k.MatmulRateFor(_precision, true, hiddenSize, _microBatchTokens, _matmul);
    }

    private SimDuration Elementwise(double bytes) => new Bytes((long)bytes) / (_deviceMemory * _model.MemoryEfficiency);

    /// <summary>
    /// A ring collective over the node's GPUs and across nodes: each GPU moves (G−1)/G of the bytes over its
    /// GPU link, and each node moves (M−1)/M of them over its network; the two stages pipeline.
    /// </summary>
    private SimDuration Collective(Bytes bytes)
    {
        var intra = _gpusPerNode > 1 ? bytes * ((_gpusPerNode - 1) / (double)_gpusPerNode) / _gpuLink : SimDuration.Zero;
        var inter = _nodes > 1 && _network.BytesPerSecond > 0 ? bytes * ((_nodes - 1) / (double)_nodes) / _network : SimDuration.Zero;
        var latency = _hw.Network?.LatencyUs is { } l && _nodes > 1 ? SimDuration.FromMicroseconds(l.Value) : SimDuration.Zero;
        return SimDuration.Max(intra, inter) + latency;
    }
}

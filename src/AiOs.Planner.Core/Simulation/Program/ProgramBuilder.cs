using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Simulation.Program;

/// <summary>Emits one step's operations in a topological order; see <see cref="StepScheduler"/>.</summary>
internal sealed partial class ProgramBuilder
{
    /// <summary>The builder's number for the outer block (embedding, final norm and head as one unit).</summary>
    private const int OuterUnit = -2;

    private readonly ModelSpec _m;
    private readonly HardwareProfile _hw;
    private readonly TrainingSettings _s;
    private readonly ProgramShape _shape;
    private readonly Topology _topology;
    private readonly bool _firstStep;
    private readonly List<Operation> _ops = [];
    private readonly int _gpus, _window, _staging, _pb;
    /// <summary>Units whose step gradient is all-reduced at the accumulation boundary (<see cref="AllReducesAtBoundary"/>), in backward order, with their bytes.</summary>
    private readonly List<(UnitId Unit, long Bytes)> _boundaryAllReduces = [];
    private readonly long _tokens;
    private readonly MemoryTier _deviceTier;
    private readonly bool _fetches;

    // Per position in the use sequence (forward and backward units of every micro-batch); -1 where none.
    private readonly List<(int Unit, int MicroBatch, StepPhase Phase)> _uses = [];
    private int[] _fetchEnd = [];    // the last op of the position's fetch chain
    private int[] _uploadOf = [];    // its ParamUpload op (frees a pinned staging buffer)
    private int[] _consumerOf = [];  // the op that frees its device slot (its compute; with the engine's shape, its gradients' download)
    private long[] _stored = [];     // activation bytes its forward keeps (forward positions)
    private int[] _gradOut = [];     // the op that takes its gradients off the device (backward positions)
    private bool[] _fetched = [];    // whether its fetch was emitted
    private int[] _ringOrdinal = []; // its place among the positions sharing its slots (the outer block has its own)
    private readonly List<int>[] _rings = [[], []];

    // Per-unit figures, computed once: index 0 the embedding, 1..L the layers, L+1 the head.
    private readonly double[] _forwardFlops, _forwardElementwise;
    private readonly long[] _unitParameters, _unitGradients;
    private readonly long _layerActivations, _checkpointActivations, _headActivations, _checkpointCopy;
    /// <summary>
    /// Whether the head runs as the engine's fused head and loss (<see cref="EngineHeadLoss.Resolve"/>): its gradients are
    /// taken chunk by chunk in forward, so the head's forward operation carries its backward's work too.
    /// </summary>
    private readonly bool _headFused;
    /// <summary>Whether the fused head's loss is one kernel over each chunk's logits (<see cref="EngineHeadLoss.UsesKernel"/>).</summary>
    private readonly bool _headKernel;
    // Device bytes one fetched unit's parameters, and one unit's gradients, may hold (long.MaxValue: the whole unit).
    private readonly long _residentCap = long.MaxValue, _gradientCap = long.MaxValue;
    // Per engine unit (0…L−1 layers, L the outer block): its parameters stay in RAM under max_in_cpu (ParameterPlacement).
    private readonly bool[] _paramsInRam;

    public ProgramBuilder(ModelSpec m, HardwareProfile hw, TrainingSettings s, bool firstStep, ProgramShape shape)
    {
        _m = m;
        _hw = hw;
        _s = s;
        _shape = shape;
        _firstStep = firstStep;
        _topology = Topology.Of(s, hw);
        _gpus = _topology.Ranks;
        _pb = s.ParamBytes;
        _tokens = (long)s.MicroBatch * s.SeqLen;
        _deviceTier = hw.HasGpu ? MemoryTier.Gpu : MemoryTier.CpuPageable;
        // Parameters move per layer when ZeRO-3 partitions them and they are not all on this device.
        // The engine streams offloaded parameters through its slots whatever the stage (on several ranks, with ZeRO-2, its
        // device-resident parameters stay whole and are gathered once after the optimizer).
        _fetches = (s.PartitionsParameters && (s.ParamOffload != OffloadTier.None || _gpus > 1)) || (shape.SlotCopiesOnCpu && s.ParamOffload != OffloadTier.None);
        _window = 1 + (firstStep ? 0 : s.PrefetchDepth);
        // The engine has 1 + prefetch_depth layer slots, never more than the model has layers.
        if (shape.OuterBlock) _window = Math.Clamp(_window, 1, Math.Max(1, m.NumLayers));
        _staging = Math.Max(1, s.BufferCount / StagingBuffersPerUnit());
        _paramsInRam = shape.HonoursMaxInCpu ? ParameterPlacement.EngineUnitsInRam(m, s, _gpus) : new bool[m.NumLayers + 1];
        int units = m.NumLayers + 2;
        _forwardFlops = new double[units];
        _forwardElementwise = new double[units];
        _unitParameters = new long[units];
        _unitGradients = new long[units];
        for (int u = -1; u <= m.NumLayers; u++)
        {
            _forwardFlops[u + 1] = ComputeForwardFlops(u);
            _forwardElementwise[u + 1] = ComputeForwardElementwise(u);
            _unitParameters[u + 1] = StepScheduler.UnitParameters(m, u);
            // A tied output matrix is the embedding's: its gradient leaves once, with the embedding.
            _unitGradients[u + 1] = u >= m.NumLayers ? m.HeadParameters : _unitParameters[u + 1];
        }
        _layerActivations = Activations(ActivationModel.LayerBytesPerToken(m, s));
        _checkpointActivations = Activations(ActivationModel.CheckpointBytesPerToken(m, s));
        // The bundled engine runs the head EngineHeadLoss.Resolve picks for this device (the memory plan's); PyTorch keeps full logits.
        _headFused = s.Executor == ExecutorKind.Aios && EngineHeadLoss.Resolve(m, hw, s) == HeadLoss.Fused;
        _headKernel = _headFused && EngineHeadLoss.UsesKernel(hw.HasGpu, s.Precision);
        _headActivations = s.Executor == ExecutorKind.Aios ? EngineHeadLoss.PeakBytes(m, s, _tokens, _headFused, hw.HasGpu).Value : Activations(ActivationModel.HeadBytesPerToken(m, s));
        // The engine copies its layer inputs as they are: the training precision, hidden wide.
        _checkpointCopy = shape.PrefetchesCheckpoints ? Activations(EngineActivations.LayerInputBytesPerToken(m, s)) : _checkpointActivations;
        if (shape.Fetch == FetchGranularity.PerModule && s.PartitionsParameters)
        {
            // Module by module, the units in the window share the live set (the module computing and the prefetch
            // bucket) and a unit's gradients leave a module at a time, so no unit holds its whole block on the device.
            var ws = ParameterWorkingSet.For(m, s);
            _residentCap = Math.Max(1, ws.Live * _pb / _window);
            _gradientCap = ws.Tile * _pb;
        }
    }

    /// <summary>Device bytes a fetched unit of <paramref name="elements"/> parameters holds (see <see cref="FetchGranularity"/>).</summary>
    private long ResidentBytes(long elements) => Math.Min(elements * _pb, _residentCap);

    /// <summary>Device bytes a unit's <paramref name="elements"/> gradients hold before they leave.</summary>
    private long GradientResidentBytes(long elements) => Math.Min(elements * _pb, _gradientCap);

    /// <summary>Checkpoints wait in host RAM (<c>cpu_checkpointing</c>): copied out after each layer's forward, back before its recompute.</summary>
    /// <remarks>On a CPU device only the engine's shape copies them (into a separate host tensor, as it copies parameters into slots).</remarks>
    private bool OffloadsCheckpoints => _s.ActivationOffload == OffloadTier.Cpu && _s.ActivationCheckpointing && (_hw.HasGpu || _shape.SlotCopiesOnCpu);

    // cpu_checkpointing in the engine's shape, per layer of the micro-batch being emitted: its copy out, its copy back.
    private int[] _checkpointOut = [], _checkpointIn = [];

    /// <summary>Staging buffers one layer takes: one per weight matrix (DeepSpeed), or ceil(elements / buffer_size) staged whole.</summary>
    private int StagingBuffersPerUnit() => _shape.Staging == StagingGranularity.PerTensor
        ? StepScheduler.MatricesPerLayer(_m)
        : (int)Math.Max(1, (_m.LayerParameters + _s.BufferSize - 1) / Math.Max(1, _s.BufferSize));

    public StepProgram ToProgram() => new()
    {
        Model = _m,
        Settings = _s,
        Ops = _ops,
        StaticLevels = StepScheduler.StaticLevels(_m, _hw, _s),
        Shape = _shape,
        Topology = _topology,
        FirstStep = _firstStep,
    };

    private bool Recomputes => _s.ActivationCheckpointing || _shape.AlwaysRecompute;

    /// <summary>Whether the optimizer runs on the CPU after gradients leave the device.</summary>
    private bool CpuOptimizer => _s.OptimizerOffload != OffloadTier.None || _shape.CpuOptimizer;

    /// <summary>The delayed schedule: the CPU update changes only the master, written into the working copies once per step.</summary>
    private bool DelaysUpdate => _s.Schedule == StepSchedule.Delayed && CpuOptimizer;

    /// <summary>
    /// The unit's parameter count. The outer block holds the embedding's and the head's once: a tied output matrix is the
    /// embedding's own, so it is read, uploaded and written once (the head alone counts it, as DeepSpeed's separate head
    /// module gathers it again); counted twice, gpt2's plan read 77.2 MB a step more than the engine from NVMe.
    /// </summary>
    private long ParametersOf(int unit) => unit == OuterUnit ? _unitParameters[0] + _unitGradients[_m.NumLayers + 1] : _unitParameters[unit + 1];

    /// <summary>The gradient elements leaving with the unit.</summary>
    private long GradientsOf(int unit) => unit == OuterUnit ? _unitGradients[0] + _unitGradients[_m.NumLayers + 1] : _unitGradients[unit + 1];

    /// <summary>Whether <paramref name="unit"/>'s parameters are offloaded to NVMe but kept in CPU RAM under max_in_cpu.</summary>
    private bool ParamsInRam(UnitId unit) => unit.Kind switch
    {
        UnitKind.Layer => _paramsInRam[unit.Number],
        UnitKind.Outer => _paramsInRam[_m.NumLayers],
        _ => false,
    };

    /// <summary>Whether <paramref name="unit"/>'s parameters are read from NVMe before each use.</summary>
    private bool ParamsOnNvme(UnitId unit) => _s.ParamOffload == OffloadTier.Nvme && !ParamsInRam(unit);

    private UnitId IdOf(int unit) => unit == OuterUnit ? UnitId.Outer : UnitId.OfNumber(unit, _m.NumLayers);

    public void Emit()
    {
        bool outer = _shape.OuterBlock;
        for (int mb = 0; mb < _s.GradAccumulation; mb++)
        {
            if (outer)
            {
                _uses.Add((OuterUnit, mb, StepPhase.Forward));
                for (int i = 0; i < _m.NumLayers; i++) _uses.Add((i, mb, StepPhase.Forward));
                for (int i = _m.NumLayers - 1; i >= 0; i--) _uses.Add((i, mb, StepPhase.Backward));
            }
            else
            {
                foreach (int u in StepScheduler.ForwardUnits(_m)) _uses.Add((u, mb, StepPhase.Forward));
                foreach (int u in StepScheduler.ForwardUnits(_m).Reverse()) _uses.Add((u, mb, StepPhase.Backward));
            }
        }
        int count = _uses.Count;
        _fetchEnd = Filled(count);
        _uploadOf = Filled(count);
        _consumerOf = Filled(count);
        _stored = new long[count];
        _gradOut = Filled(count);
        _fetched = new bool[count];
        _ringOrdinal = new int[count];
        _checkpointOut = Filled(_m.NumLayers);
        _checkpointIn = Filled(_m.NumLayers);
        for (int p = 0; p < count; p++)
        {
            var ring = _rings[_uses[p].Unit == OuterUnit ? 1 : 0];
            _ringOrdinal[p] = ring.Count;
            ring.Add(p);
        }
        for (int p = 0; p < Math.Min(_window, count); p++) EmitFetch(p);

        var pass = new PassState();
        for (int p = 0; p < count; p++)
        {
            var (unit, mb, phase) = _uses[p];
            if (!_fetched[p]) EmitFetch(p);
            int[] ready = Deps(pass.PreviousCompute, _fetchEnd[p]);
            if (unit == OuterUnit)
            {
                pass.OuterPosition = p;
                pass.PreviousCompute = EmitForward(p, -1, mb, ready);
            }
            else if (phase == StepPhase.Forward)
            {
                pass.PreviousCompute = EmitForward(p, unit, mb, ready);
                if (outer && unit == _m.NumLayers - 1) EmitHead(pass, mb);
            }
            else
            {
                pass.PreviousCompute = EmitBackwardAt(p, unit, mb, ready, pass);
            }
            // The engine frees a slot once its gradients are drained, so the download comes before the fetch that reuses it.
            if (outer && phase == StepPhase.Backward) AfterBackward(p, unit, mb, pass);
            if (p + _window < count) EmitFetch(p + _window);
            if (!outer && phase == StepPhase.Backward) AfterBackward(p, unit, mb, pass);
            if (outer && unit == OuterUnit && _m.NumLayers == 0) EmitHead(pass, mb);
            bool endOfMicroBatch = p + 1 == count || _uses[p + 1].MicroBatch != mb;
            if (outer && endOfMicroBatch) EmitOuterBackward(pass, mb);
        }
        if (_boundaryAllReduces.Count > 0) EmitBoundaryAllReduces(pass.PreviousCompute, pass.LastGradOps);
        if (DelaysUpdate && !_firstStep)
            // Steady state of the delayed update: these are the previous step's sub-groups, which run beside this step's
            // passes, so nothing of this step comes before them (a resource the passes also use serves them after its pass work).
            EmitOptimizer([]);
        else if (_s.Schedule != StepSchedule.Overlapped || !CpuOptimizer)
            EmitOptimizer(pass.LastGradOps.Where(i => i >= 0).Append(pass.PreviousCompute).ToArray());
        else if (_s.ZeroStage is ZeroStage.Zero1 or ZeroStage.Zero2 && _gpus > 1)
            // Below stage 3 every GPU needs the whole updated model: all-gather it once the last layer is updated.
            Add(OpKind.AllGather, ResourceKind.Collective, StepPhase.Optimizer, UnitId.Model, 0, pass.LastGradOps.Where(i => i >= 0).ToArray(),
                Bytes.OfElements(_m.TotalParameters, _pb));
        if (DelaysUpdate) EmitMasterWriteBack();
    }

    /// <summary>What the pass carries from one position to the next.</summary>
    private sealed class PassState
    {
        public int PreviousCompute = -1;
        public int OuterPosition = -1;
        public readonly List<int> LastGradOps = [];
        public readonly List<int> BackwardPositions = [];
        public long HeadStored;
    }

    private int EmitBackwardAt(int p, int unit, int mb, int[] ready, PassState pass)
    {
        long stored;
        if (_shape.OuterBlock)
        {
            // Within a micro-batch, layer i's forward position is 1 + i after the outer block's.
            stored = _stored[pass.OuterPosition + 1 + unit];
        }
        else
        {
            int units = _m.NumLayers + 2;
            // The forward position of the same unit and micro-batch mirrors this one within the micro-batch.
            stored = _stored[p - 2 * (p % (2 * units)) + (2 * units - 1)];
        }
        // Gradient buckets: two units' gradients may wait to leave the device; a third backward waits for the
        // oldest, counted over backward positions only (across micro-batches too).
        int bucket = pass.BackwardPositions.Count >= 2 ? _gradOut[pass.BackwardPositions[^2]] : -1;
        pass.BackwardPositions.Add(p);
        return EmitBackward(p, unit, mb, ready, stored, bucket);
    }

    private void AfterBackward(int p, int unit, int mb, PassState pass)
    {
        int gradDone = EmitGradients(p, unit, mb, pass.PreviousCompute);
        if (_shape.OuterBlock && _gradOut[p] >= 0) _consumerOf[p] = _gradOut[p];
        if (_s.Schedule == StepSchedule.Overlapped && mb == _s.GradAccumulation - 1 && CpuOptimizer)
            gradDone = EmitLayerUpdate(unit, gradDone);
        pass.LastGradOps.Add(gradDone);
    }

    private int Add(OpKind kind, ResourceKind resource, StepPhase phase, UnitId unit, int mb, int[] deps,
        Bytes bytes = default, double flops = 0, double elementwise = 0, long parameters = 0, bool write = false, MemoryEffect[]? effects = null,
        long denseGradient = 0, SubGroupRef? subGroup = null, int slot = -1, int deviceSlot = -1, MasterWriteBackTraffic traffic = default,
        HostAccumulation hostAdd = default, int highHalvesSlot = -1, double sums = 0, CpuUpdatePass? hostKernel = null)
    {
        int id = _ops.Count;
        _ops.Add(new Operation
        {
            Id = id, Kind = kind, Resource = resource, Phase = phase, Unit = unit, MicroBatch = mb, Deps = deps, Bytes = bytes,
            Flops = flops, ElementwiseBytes = elementwise, Parameters = parameters, IsWrite = write, Effects = effects ?? [],
            DenseGradientBytes = denseGradient, SubGroup = subGroup, Slot = slot, DeviceSlot = deviceSlot, WriteBackTraffic = traffic,
            HostAdd = hostAdd, HighHalvesSlot = highHalvesSlot, SumBytes = sums, HostKernelPass = hostKernel,
        });
        return id;
    }

    private static int[] Filled(int length)
    {
        var array = new int[length];
        Array.Fill(array, -1);
        return array;
    }

    /// <summary>The dependencies that exist (ids ≥ 0), without repeats.</summary>
    private static int[] Deps(int a) => a >= 0 ? [a] : [];

    private static int[] Deps(int a, int b) => a < 0 ? Deps(b) : b < 0 || b == a ? [a] : [a, b];

    private long Share(long elements) => _topology.Share(elements);
}

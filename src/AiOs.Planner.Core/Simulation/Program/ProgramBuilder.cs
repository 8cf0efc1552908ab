using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Simulation.Program;

/// <summary>Emits one step's operations in a topological order; see <see cref="StepScheduler"/>.</summary>
internal sealed partial class ProgramBuilder
{
    private readonly ModelSpec _m;
    private readonly HardwareProfile _hw;
    private readonly TrainingSettings _s;
    private readonly bool _firstStep;
    private readonly List<Operation> _ops = [];
    private readonly int _gpus, _gpusPerNode, _window, _staging, _pb;
    private readonly long _tokens;
    private readonly MemoryTier _deviceTier;
    private readonly bool _fetches;

    // Per position in the use sequence (forward and backward units of every micro-batch); -1 where none.
    private readonly List<(int Unit, int MicroBatch, StepPhase Phase)> _uses = [];
    private int[] _fetchEnd = [];    // the last op of the position's fetch chain
    private int[] _uploadOf = [];    // its ParamUpload op (frees a pinned staging buffer)
    private int[] _consumerOf = [];  // the compute op that releases its parameters
    private long[] _stored = [];     // activation bytes its forward keeps (forward positions)
    private int[] _gradOut = [];     // the op that takes its gradients off the device (backward positions)

    // Per-unit figures, computed once: index 0 the embedding, 1..L the layers, L+1 the head.
    private readonly double[] _forwardFlops, _forwardElementwise;
    private readonly long[] _unitParameters, _unitGradients;
    private readonly long _layerActivations, _checkpointActivations, _headActivations;

    public ProgramBuilder(ModelSpec m, HardwareProfile hw, TrainingSettings s, bool firstStep)
    {
        _m = m;
        _hw = hw;
        _s = s;
        _firstStep = firstStep;
        _gpusPerNode = Math.Max(1, s.GpusPerNode ?? hw.GpusPerNode);
        _gpus = _gpusPerNode * Math.Max(1, s.Nodes ?? hw.Nodes);
        _pb = s.ParamBytes;
        _tokens = (long)s.MicroBatch * s.SeqLen;
        _deviceTier = hw.HasGpu ? MemoryTier.Gpu : MemoryTier.CpuPageable;
        // Parameters move per layer when ZeRO-3 partitions them and they are not all on this device.
        _fetches = s.PartitionsParameters && (s.ParamOffload != OffloadTier.None || _gpus > 1);
        _window = 1 + (firstStep ? 0 : s.PrefetchDepth);
        _staging = Math.Max(1, s.BufferCount / StepScheduler.MatricesPerLayer(m));
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
        _headActivations = Activations(ActivationModel.HeadBytesPerToken(m, s));
    }

    public StepProgram ToProgram() => new()
    {
        Model = _m,
        Settings = _s,
        Ops = _ops,
        StaticLevels = StepScheduler.StaticLevels(_m, _hw, _s),
        Gpus = _gpus,
        GpusPerNode = _gpusPerNode,
        FirstStep = _firstStep,
    };

    public void Emit()
    {
        for (int mb = 0; mb < _s.GradAccumulation; mb++)
        {
            foreach (int u in StepScheduler.ForwardUnits(_m)) _uses.Add((u, mb, StepPhase.Forward));
            foreach (int u in StepScheduler.ForwardUnits(_m).Reverse()) _uses.Add((u, mb, StepPhase.Backward));
        }
        _fetchEnd = Filled(_uses.Count);
        _uploadOf = Filled(_uses.Count);
        _consumerOf = Filled(_uses.Count);
        _stored = new long[_uses.Count];
        _gradOut = Filled(_uses.Count);
        for (int p = 0; p < Math.Min(_window, _uses.Count); p++) EmitFetch(p);

        int previousCompute = -1;
        var lastGradOps = new List<int>();
        var backwardPositions = new List<int>();
        int units = _m.NumLayers + 2;
        for (int p = 0; p < _uses.Count; p++)
        {
            var (unit, mb, phase) = _uses[p];
            bool lastMicroBatch = mb == _s.GradAccumulation - 1;
            int[] ready = Deps(previousCompute, _fetchEnd[p]);
            if (phase == StepPhase.Forward)
            {
                previousCompute = EmitForward(p, unit, mb, ready);
            }
            else
            {
                // The forward position of the same unit and micro-batch mirrors this one within the micro-batch.
                int forwardPosition = p - 2 * (p % (2 * units)) + (2 * units - 1);
                // Gradient buckets: two units' gradients may wait to leave the device; a third backward waits for the
                // oldest, counted over backward positions only (across micro-batches too).
                int bucket = backwardPositions.Count >= 2 ? _gradOut[backwardPositions[^2]] : -1;
                backwardPositions.Add(p);
                previousCompute = EmitBackward(p, unit, mb, ready, _stored[forwardPosition], bucket);
            }
            if (p + _window < _uses.Count) EmitFetch(p + _window);
            if (phase == StepPhase.Backward)
            {
                int gradDone = EmitGradients(p, unit, mb, previousCompute);
                if (_s.Schedule == StepSchedule.Overlapped && lastMicroBatch && _s.OptimizerOffload != OffloadTier.None)
                    gradDone = EmitLayerUpdate(unit, gradDone);
                lastGradOps.Add(gradDone);
            }
        }
        if (_s.Schedule == StepSchedule.DeepSpeed || _s.OptimizerOffload == OffloadTier.None)
            EmitOptimizer(lastGradOps.Where(i => i >= 0).Append(previousCompute).ToArray());
        else if (_s.ZeroStage is ZeroStage.Zero1 or ZeroStage.Zero2 && _gpus > 1)
            // Below stage 3 every GPU needs the whole updated model: all-gather it once the last layer is updated.
            Add(OpKind.AllGather, ResourceKind.Collective, StepPhase.Optimizer, 0, 0, lastGradOps.Where(i => i >= 0).ToArray(),
                Bytes.OfElements(_m.TotalParameters, _pb));
    }

    private int Add(OpKind kind, ResourceKind resource, StepPhase phase, int layer, int mb, int[] deps,
        Bytes bytes = default, double flops = 0, double elementwise = 0, long parameters = 0, bool write = false, MemoryEffect[]? effects = null,
        long denseGradient = 0)
    {
        int id = _ops.Count;
        _ops.Add(new Operation
        {
            Id = id, Kind = kind, Resource = resource, Phase = phase, Layer = layer, MicroBatch = mb, Deps = deps, Bytes = bytes,
            Flops = flops, ElementwiseBytes = elementwise, Parameters = parameters, IsWrite = write, Effects = effects ?? [],
            DenseGradientBytes = denseGradient,
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

    private long Share(long elements) => (elements + _gpus - 1) / _gpus;
}

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

    // Per position in the use sequence (forward and backward units of every micro-batch):
    private readonly List<(int Unit, int MicroBatch, StepPhase Phase)> _uses = [];
    private readonly Dictionary<int, int> _fetchEnd = [];      // position → last op of its fetch chain
    private readonly Dictionary<int, int> _uploadOf = [];      // position → its ParamUpload op (staging slots)
    private readonly Dictionary<int, int> _consumerOf = [];    // position → the compute op that releases its parameters
    private readonly Dictionary<int, int> _fetchStartOp = [];  // position → the first device-side op of the chain

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
        for (int p = 0; p < Math.Min(_window, _uses.Count); p++) EmitFetch(p);

        int previousCompute = -1;
        int autocastStart = -1;
        var lastGradOps = new List<int>();
        var stored = new Dictionary<(int Unit, int Mb), long>();
        for (int p = 0; p < _uses.Count; p++)
        {
            var (unit, mb, phase) = _uses[p];
            bool lastMicroBatch = mb == _s.GradAccumulation - 1;
            int[] ready = Deps(previousCompute, _fetchEnd.GetValueOrDefault(p, -1));
            if (phase == StepPhase.Forward)
            {
                previousCompute = EmitForward(p, unit, mb, ready, stored, ref autocastStart);
            }
            else
            {
                previousCompute = EmitBackward(p, unit, mb, ready, stored);
            }
            if (p + _window < _uses.Count) EmitFetch(p + _window);
            if (phase == StepPhase.Backward)
            {
                int gradDone = EmitGradients(unit, mb, previousCompute);
                if (_s.Schedule == StepSchedule.Overlapped && lastMicroBatch && _s.OptimizerOffload != OffloadTier.None)
                    gradDone = EmitLayerUpdate(unit, gradDone);
                lastGradOps.Add(gradDone);
            }
        }
        if (_s.Schedule == StepSchedule.DeepSpeed || _s.OptimizerOffload == OffloadTier.None)
            EmitOptimizer(lastGradOps.Where(i => i >= 0).Append(previousCompute).ToArray());
    }

    private int Add(OpKind kind, ResourceKind resource, StepPhase phase, int layer, int mb, int[] deps,
        Bytes bytes = default, double flops = 0, double elementwise = 0, long parameters = 0, bool write = false, MemoryEffect[]? effects = null)
    {
        int id = _ops.Count;
        _ops.Add(new Operation
        {
            Id = id, Kind = kind, Resource = resource, Phase = phase, Layer = layer, MicroBatch = mb, Deps = deps, Bytes = bytes,
            Flops = flops, ElementwiseBytes = elementwise, Parameters = parameters, IsWrite = write, Effects = effects ?? [],
        });
        return id;
    }

    private static int[] Deps(params int[] ids) => ids.Where(i => i >= 0).Distinct().ToArray();

    private long Share(long elements) => (elements + _gpus - 1) / _gpus;
}

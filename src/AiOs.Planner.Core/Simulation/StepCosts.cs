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
    private readonly FlopRate _matmul;
    private readonly Bandwidth _deviceMemory, _h2d, _d2h, _nvmeRead, _nvmeWrite, _gpuLink, _network;
    private readonly double _adamPerSecond;
    private readonly int _gpusPerNode, _nodes;

    /// <summary>
    /// Costs on <paramref name="hw"/> for <paramref name="s"/>; <paramref name="nvmeWorkingSet"/> is what the node's
    /// swap files hold (it sets the drives' swap rates, see <see cref="DriveSpec.SwapReadRate"/>).
    /// </summary>
    public StepCosts(HardwareProfile hw, TrainingSettings s, int gpusPerNode, int nodes, Bytes nvmeWorkingSet, ComputeModel? model = null)
    {
        _hw = hw;
        _model = model ?? ComputeModel.Default;
        // An explicit compute model wins; otherwise a CPU-only machine uses its own fitted constants when it has them.
        _cpuLayer = hw.HasGpu || model is not null ? null : hw.Cpu.LayerCompute;
        _gpusPerNode = gpusPerNode;
        _nodes = nodes;
        if (hw.HasGpu)
        {
            _matmul = hw.Gpu!.MatmulRate(s.Precision);
            _deviceMemory = Bandwidth.FromGBps(hw.Gpu.MemoryBandwidthGbps.Value);
            var link = hw.HostLink!;
            int sharing = Math.Min(link.GpusPerRoot, gpusPerNode);
            // Offloaded parameters and gradients move through pinned buffers when pin_memory is set; NVMe swaps always do.
            bool pinned = s.PinMemory || s.ParamOffload == OffloadTier.Nvme;
            _h2d = link.H2d(pinned) / sharing;
            _d2h = link.D2h(s.PinMemory || s.OptimizerOffload == OffloadTier.Nvme) / sharing;
            _gpuLink = hw.GpuLink?.Rate ?? link.H2d(pinned: true) / sharing;
        }
        else
        {
            _matmul = hw.Cpu.MatmulRateFor(s.Precision);
            _deviceMemory = hw.Cpu.MemoryBandwidth;
            _h2d = _d2h = _gpuLink = hw.Cpu.MemoryBandwidth;
        }
        _network = hw.Network?.Rate ?? new Bandwidth(0);
        // Training's NVMe traffic is swap traffic: the drives' measured swap rates (the curves where none were measured).
        double read = hw.Drives.Sum(d => d.SwapReadRate(s.Aio, nvmeWorkingSet).BytesPerSecond);
        double write = hw.Drives.Sum(d => d.SwapWriteRate(s.Aio, nvmeWorkingSet).BytesPerSecond);
        _nvmeRead = new Bandwidth(read / gpusPerNode);
        _nvmeWrite = new Bandwidth(write / gpusPerNode);
        _adamPerSecond = hw.Cpu.AdamParamsPerS.Value / gpusPerNode;
        double halfRate = _model.MatmulHalfRateHidden;
        MatmulEfficiencyOf = _cpuLayer is { } fitted ? _ => fitted.MatmulEfficiency.Value : h => h / (h + halfRate);
    }

    /// <summary>Fraction of the large-matmul rate a layer of hidden size h reaches (on a CPU with a layer fit, its fitted constant).</summary>
    public Func<double, double> MatmulEfficiencyOf { get; }

    /// <summary>Whether NVMe operations can be costed (the profile lists a drive).</summary>
    public bool HasDrives => _hw.Drives.Count > 0;

    /// <summary>The time <paramref name="op"/> takes on its resource, alone.</summary>
    public SimDuration Duration(Operation op, int hiddenSize) => op.Resource switch
    {
        ResourceKind.Compute => op.Kind == OpKind.OptimizerStep ? Elementwise(op.ElementwiseBytes) : Compute(op, hiddenSize),
        ResourceKind.H2d => op.Bytes / _h2d,
        ResourceKind.D2h => op.Bytes / _d2h,
        ResourceKind.Nvme => op.Bytes / (op.IsWrite ? _nvmeWrite : _nvmeRead),
        ResourceKind.Cpu => SimDuration.FromSeconds(op.Parameters / _adamPerSecond),
        ResourceKind.Collective => Collective(op.Bytes),
        _ => throw new InvalidOperationException($"No cost for resource {op.Resource}."),
    };

    private SimDuration Compute(Operation op, int hiddenSize)
    {
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

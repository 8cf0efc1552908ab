using System.Collections.Concurrent;
using AiOs.Planner.Memory;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Tuning;

/// <summary>
/// The work of one step per resource, in the amounts no knob changes: busy time of the compute device, the CPU's
/// optimizer and the GPU links, and bytes over the host link and the drives (the knobs change only how fast those
/// move: AIO settings, pinning). Every resource runs its operations one at a time, so a step never takes less than
/// any resource's work at its fastest knob setting.
/// </summary>
internal readonly record struct StepWork(long ComputeNs, long CpuNs, long CollectiveNs, long H2dBytes, long D2hBytes,
    long NvmeReadBytes, long NvmeWriteBytes, long NvmeWorkingSet, int GpusPerNode)
{
    public static StepWork Of(StepProgram program, StepCosts costs)
    {
        long compute = 0, cpu = 0, collective = 0, h2d = 0, d2h = 0, read = 0, write = 0;
        int hidden = program.Model.HiddenSize;
        foreach (var op in program.Ops)
        {
            switch (op.Resource)
            {
                // Without what moves with the knobs (StepCosts.WorkAlone): the bound holds at every knob setting.
                case ResourceKind.Compute: compute += costs.WorkAlone(op, hidden).Nanoseconds; break;
                case ResourceKind.Cpu: cpu += costs.WorkAlone(op, hidden).Nanoseconds; break;
                case ResourceKind.Collective: collective += costs.Duration(op, hidden).Nanoseconds; break;
                // The simulator serves QueuedH2d apart at the link's full rate, so its bytes are no part of H2d's floor.
                case ResourceKind.H2d: h2d += op.Bytes.Value; break;
                case ResourceKind.D2h: d2h += op.Bytes.Value; break;
                case ResourceKind.Nvme when op.IsWrite: write += op.Bytes.Value; break;
                case ResourceKind.Nvme: read += op.Bytes.Value; break;
            }
        }
        return new StepWork(compute, cpu, collective, h2d, d2h, read, write, program.StaticLevels.GetValueOrDefault(MemoryTier.Nvme), program.GpusPerNode);
    }
}

public static partial class Tuner
{
    internal sealed partial class Evaluator
    {
        // The fastest AIO settings the knob search can reach, for reads and for writes, per swap working set.
        private readonly ConcurrentDictionary<long, (AioSettings Read, AioSettings Write)> _fastestAio = new();
        private readonly ConcurrentDictionary<string, double> _bounds = new();
        private static readonly bool[] Pinning = [true, false];

        /// <summary>
        /// Most tokens per second any knob setting of <paramref name="c"/>'s structure can reach: tokens per step over
        /// the largest per-resource lower bound (computed once per structure; 0 when not simulated).
        /// </summary>
        public double Bound(Candidate c) => c.Work is not { } work ? 0 : _bounds.GetOrAdd(StructureKey(c), _ =>
        {
            var hw = _request.Hardware;
            var (readAio, writeAio) = _fastestAio.GetOrAdd(work.NvmeWorkingSet, FastestAio);
            long Transfer(ResourceKind resource, long bytes, bool write, AioSettings aio)
            {
                if (bytes == 0) return 0;
                var op = new Operation { Id = 0, Kind = OpKind.ParamRead, Resource = resource, Phase = StepPhase.Forward, Unit = UnitId.Model, Deps = [], Bytes = new Bytes(bytes), IsWrite = write };
                // Pinning is a knob: the faster of pinned and pageable (NVMe swaps are pinned whatever it says).
                return Pinning.Min(pin =>
                    new StepCosts(hw, c.Settings with { PinMemory = pin, Aio = aio }, work.GpusPerNode, Topology.Of(c.Settings, hw).Nodes,
                        new Bytes(work.NvmeWorkingSet), _request.ComputeModel).Duration(op, _request.Model.HiddenSize).Nanoseconds);
            }
            long nvme = Transfer(ResourceKind.Nvme, work.NvmeReadBytes, false, readAio) + Transfer(ResourceKind.Nvme, work.NvmeWriteBytes, true, writeAio);
            long floor = new[] { work.ComputeNs, work.CpuNs, work.CollectiveNs, nvme,
                Transfer(ResourceKind.H2d, work.H2dBytes, false, c.Settings.Aio), Transfer(ResourceKind.D2h, work.D2hBytes, false, c.Settings.Aio) }.Max();
            // Per-operation rounding to whole nanoseconds: allow a part in a million.
            return floor <= 0 ? double.PositiveInfinity : c.TokensPerStep / (floor * (1 - 1e-6) / 1e9);
        });

        private (AioSettings Read, AioSettings Write) FastestAio(long workingSet)
        {
            var ws = new Bytes(workingSet);
            var hw = _request.Hardware;
            var space = _knobs;
            var options = space.BlockSizes.SelectMany(b => space.QueueDepths.SelectMany(q => space.Threads.Select(t =>
                    _request.Base.Aio with { BlockSize = new Bytes(b), QueueDepth = q, IntraOpParallelism = t })))
                .Append(_request.Base.Aio).ToList();
            var read = options.MaxBy(a => hw.Drives.Sum(d => d.SwapReadRate(a, ws).BytesPerSecond))!;
            var write = options.MaxBy(a => hw.Drives.Sum(d => d.SwapWriteRate(a, ws).BytesPerSecond))!;
            return (read, write);
        }
    }
}

using System.Runtime.InteropServices;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Optim;
using AiOs.Planner.Engine.Storage;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Engine.Execution;

/// <summary>
/// Gradients in NVMe swap files, one per unit. The step program (<see cref="Simulation.Program.NvmeGradientWrites.ReadModifyWriteEachMicroBatch"/>)
/// downloads a unit's first micro-batch into the host buffer and writes it, and for later micro-batches reads the sum
/// back, adds and writes it; the optimizer reads it by sub-group. Only one unit's gradient is in RAM at a time.
/// </summary>
internal sealed class NvmeGradientStore : GradientStore
{
    private readonly ISwapStore _store;
    private readonly IoCounters _io;
    /// <summary>One unit's fp32 gradient, 4096-byte aligned so O_DIRECT moves it without a bounce copy (freed by <see cref="Dispose"/>).</summary>
    private readonly IO.AlignedBuffer _unitBuffer;
    private readonly long[] _elements;

    public NvmeGradientStore(IReadOnlyList<long> unitElements, ISwapStore store, IoCounters io, SpanTrace trace, bool norms = true) : base(unitElements.Count, trace, norms)
    {
        _store = store;
        _io = io;
        _unitBuffer = new IO.AlignedBuffer(new Units.Bytes((4L * unitElements.Max() + IO.AlignedBuffer.Alignment - 1) / IO.AlignedBuffer.Alignment * IO.AlignedBuffer.Alignment));
        _elements = unitElements.ToArray();
    }

    private Span<byte> UnitBytes(int unit) => MemoryMarshal.AsBytes(_unitBuffer.AsFloats(0, checked((int)_elements[unit])));

    public override void Download(int unit, FlatParameters parameters, bool first, bool last)
    {
        Span<float> sum = _unitBuffer.AsFloats(0, checked((int)parameters.Layout.Elements));
        parameters.DrainGradientsInto(sum, overwrite: first);
        if (last && ComputesNorms) SumOfSquares[unit] = SpanMath.SumOfSquares(sum);
    }

    public override void ReadBack(int unit)
    {
        Span<byte> bytes = UnitBytes(unit);
        _store.Read(Key(unit), 0, bytes);
        _io.Read(StorageTier.Nvme, bytes.Length);
    }

    public override void WriteOut(int unit)
    {
        Span<byte> bytes = UnitBytes(unit);
        _store.Write(Key(unit), 0, bytes);
        _io.Written(StorageTier.Nvme, bytes.Length);
    }

    private static string Key(int unit) => $"grad-u{unit}";

    public override ReadOnlySpan<float> Get(SubGroup g, Span<float> scratch)
    {
        Span<float> part = scratch[..g.Elements];
        _store.Read(Key(g.Unit), 4 * g.Offset, MemoryMarshal.AsBytes(part));
        _io.Read(StorageTier.Nvme, 4L * g.Elements);
        return part;
    }

    public override void Dispose()
    {
        _unitBuffer.Dispose();
        base.Dispose();
    }
}

using AiOs.Planner.Engine.Optim;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Execution;

/// <summary>
/// The delayed schedule's second host copy of the parameters (CPU tier): the passes read the active copy while the pending
/// update writes θ_i into the spare one in its Adam pass; at the step boundary, after both have ended, the two swap, so the
/// write-back of θ is a pointer swap instead of a pass over the master (~6 bytes per parameter).
/// </summary>
internal sealed partial class ParameterSwapper
{
    /// <summary>Spare host copies (null unless <see cref="AllocateSpareCopies"/> ran): each unit's the size and pinning of its active copy.</summary>
    private Native.HostBuffer?[]? _spareBuffers;
    private Tensor?[]? _spareCopies;
    private SpareSink? _spareSink;

    /// <summary>
    /// Whether <paramref name="program"/> swaps the working copies at its write-back of θ: the delayed schedule with the
    /// parameters in host RAM (the builder's <c>MasterWriteBack</c> then carries no bytes).
    /// </summary>
    public bool SwapsCopiesFor(StepProgram program) => program.Settings.Schedule == StepSchedule.Delayed && _tier == StorageTier.Cpu;

    /// <summary>Whether the working copies are double-buffered (the delayed schedule with every unit on the CPU tier).</summary>
    public bool DoubleBuffered => _spareCopies is not null;

    /// <summary>
    /// Gives every unit a spare host copy (CPU tier only: device-resident units and NVMe files keep the serial write-back).
    /// Its contents start as zeros: an update that is applied writes every element of every unit into it before it is swapped in.
    /// </summary>
    /// <exception cref="InvalidOperationException">The parameters are not on the CPU tier.</exception>
    public void AllocateSpareCopies()
    {
        if (_spareBuffers is not null) return;
        if (_tier != StorageTier.Cpu || _cpuBuffers is null)
            throw new InvalidOperationException($"Only parameters in host RAM (--offload-params cpu) are double-buffered; these are on {_tier}.");
        _spareBuffers = Native.HostBuffer.AllocateMany(Enumerable.Range(0, _layouts.Length).Select(HostElements).ToArray(), _dtype,
            pin: _device.type == TorchSharp.DeviceType.CUDA);
        _spareCopies = _spareBuffers.Select(b => b!.Tensor).ToArray();
        _spareSink = new SpareSink(this);
    }

    /// <summary>Where the optimizer writes the training-precision copy into the spare copies, in its pass (see <see cref="SpareSink"/>).</summary>
    public IHalfSink Spare => _spareSink ?? throw new InvalidOperationException("The parameters are not double-buffered.");

    /// <summary>Stores fp32 <paramref name="master"/> values, cast to the training precision, into the spare copy of <paramref name="unit"/>.</summary>
    public void WriteSpare(int unit, long elementOffset, ReadOnlySpan<float> master)
    {
        int byteCount = master.Length * _elementBytes;
        PrecisionCast.ToWorking(master, _spareCopies![unit]!.bytes.Slice(checked((int)(elementOffset * _elementBytes)), byteCount), _dtype);
        _io.Written(StorageTier.Cpu, byteCount);
    }

    /// <summary>
    /// Makes the spare copies the active ones (and the active ones spare). Call only when nothing reads or writes either: the
    /// passes and the update have ended and no queued upload still reads a host copy.
    /// </summary>
    public void SwapCopies()
    {
        if (_spareCopies is null) throw new InvalidOperationException("The parameters are not double-buffered.");
        (_cpuCopies, _spareCopies) = (_spareCopies, _cpuCopies!);
        (_cpuBuffers, _spareBuffers) = (_spareBuffers, _cpuBuffers);
    }

    /// <summary>The spare copies as an <see cref="IHalfSink"/>: bf16 or fp16 targets in them (empty for fp32 training, which takes <see cref="WriteSpare"/>).</summary>
    private sealed class SpareSink(ParameterSwapper owner) : IHalfSink
    {
        public Span<ushort> HalfTarget(int unit, long elementOffset, int count) =>
            owner._dtype is not (ScalarType.BFloat16 or ScalarType.Float16) ? Span<ushort>.Empty
            : System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(owner._spareCopies![unit]!.bytes.Slice(checked((int)(elementOffset * 2)), count * 2));

        public bool TargetsFp16 => owner._dtype == ScalarType.Float16;

        public void CommitHalf(int unit, long elementOffset, int count) => owner._io.Written(StorageTier.Cpu, 2L * count);
    }

    private void DisposeSpareCopies()
    {
        if (_spareBuffers is not null) foreach (Native.HostBuffer? b in _spareBuffers) b?.Dispose();
        _spareBuffers = null;
        _spareCopies = null;
    }
}

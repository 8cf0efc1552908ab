using System.Runtime.InteropServices;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Optim;
using AiOs.Planner.Engine.Storage;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Engine.Execution;

/// <summary>
/// Where each unit's fp32 gradient accumulates over the micro-batches of a step, and where the optimizer
/// reads it from: CPU RAM, or a swap file per unit (<c>grad-u&lt;i&gt;</c>) when gradients are offloaded to
/// NVMe. The compute thread accumulates; the optimizer (possibly on another thread) reads units whose
/// last micro-batch is done.
/// </summary>
internal abstract class GradientStore : IDisposable
{
    private readonly SpanTrace _trace;

    /// <param name="units">Units of the model.</param>
    /// <param name="trace">Where grad_download spans go.</param>
    /// <param name="norms">Whether to compute each unit's Σg² (only clipping needs it; it is a full pass over the gradients).</param>
    protected GradientStore(int units, SpanTrace trace, bool norms)
    {
        SumOfSquares = new double[units];
        _trace = trace;
        ComputesNorms = norms;
    }

    /// <summary>Whether <see cref="SumOfSquares"/> is kept.</summary>
    protected bool ComputesNorms { get; }

    /// <summary>Whether the store takes Σg² on the device (<see cref="GradientNorms.UnitSum"/>) rather than from the landed values on the host.</summary>
    public virtual bool TakesDeviceNorms => false;

    /// <summary>The unit as the step program numbers layers (the outer block is −1).</summary>
    protected int ProgramLayer(int unit) => unit == SumOfSquares.Length - 1 ? -1 : unit;

    /// <summary>Moves the unit's gradients off the device into <paramref name="into"/> (a <c>grad_download</c> span).</summary>
    protected void Drain(int unit, FlatParameters parameters, Span<float> into, bool overwrite)
    {
        using (Begin(unit, parameters)) parameters.DrainGradientsInto(into, overwrite);
    }

    /// <summary>A span of the wait for <paramref name="unit"/>'s gradient copy before its add (<see cref="SpanTrace.CopyWait"/>).</summary>
    protected SpanTrace.SpanScope CopyWait(int unit) => _trace.CopyWait(ProgramLayer(unit));

    /// <summary>A grad_download span for <paramref name="unit"/>.</summary>
    protected SpanTrace.SpanScope Begin(int unit, FlatParameters parameters) =>
        _trace.Begin(ResourceKind.D2h, OpKind.GradDownload, ProgramLayer(unit), parameters.ByteLength);

    /// <summary>As <see cref="Drain"/>, into an fp32 host tensor.</summary>
    protected void DrainTensor(int unit, FlatParameters parameters, TorchSharp.torch.Tensor into, bool overwrite)
    {
        using (Begin(unit, parameters)) parameters.DrainGradientsInto(into, overwrite);
    }

    /// <summary>Σg² of each unit's step gradient, in index order, set when its last micro-batch is accumulated (zeros unless norms were asked for).</summary>
    public double[] SumOfSquares { get; }

    /// <summary>
    /// Adds the gradients held by <paramref name="parameters"/> to unit <paramref name="unit"/> (starting afresh on the first micro-batch)
    /// and drops them, in one call: the in-memory reference trainer's way. The offloaded trainer's program splits this into GradRead,
    /// GradDownload and GradWrite operations.
    /// </summary>
    public virtual void Accumulate(int unit, FlatParameters parameters, bool first, bool last) =>
        throw new InvalidOperationException("NVMe gradients are read, accumulated and written by the step program's operations.");

    /// <summary>
    /// GradDownload, as the step program's handler: drains the unit's device gradients into its accumulator (overwriting
    /// it on the first micro-batch; NVMe: the host buffer a GradRead filled) and, after the last micro-batch, its Σg².
    /// The executor records the span.
    /// </summary>
    public abstract void Download(int unit, FlatParameters parameters, bool first, bool last);

    /// <summary>Bytes a <see cref="Download"/> of <paramref name="parameters"/> moves off the device: the working precision unless the store widens them first.</summary>
    public virtual long DownloadBytes(FlatParameters parameters, bool first) => parameters.ByteLength;

    /// <summary>GradRead: the unit's sum so far back from NVMe into the host buffer (NVMe gradients only).</summary>
    public virtual void ReadBack(int unit) => throw new InvalidOperationException("Gradients in CPU RAM are not read back; the program should not ask for it.");

    /// <summary>GradWrite: the host buffer out to the unit's swap file (NVMe gradients only).</summary>
    public virtual void WriteOut(int unit) => throw new InvalidOperationException("Gradients in CPU RAM are not written; the program should not ask for it.");

    /// <summary>After a failed step: drops a later micro-batch's download queued and never added (its copy waited for first).</summary>
    public virtual void DropQueued()
    {
    }

    /// <summary>GradAccumulate: a later micro-batch's download added into the unit's sum once it has landed, and after the last its Σg² (gradients in CPU RAM, one process).</summary>
    public virtual void AddQueued(int unit) => throw new InvalidOperationException("Only gradients in CPU RAM are accumulated apart from their download; the program should not ask for it.");

    /// <summary>The gradient of sub-group <paramref name="g"/>: a view of the store, or <paramref name="scratch"/> filled from it.</summary>
    public abstract ReadOnlySpan<float> Get(SubGroup g, Span<float> scratch);

    /// <summary>
    /// The gradient of sub-group <paramref name="g"/> as the bf16 bits the store keeps, for an optimizer that widens them
    /// as it reads (no fp32 copy); false when the store holds fp32 (then use <see cref="Get"/>).
    /// </summary>
    public virtual bool TryGetBf16(SubGroup g, out ReadOnlySpan<ushort> bits)
    {
        bits = default;
        return false;
    }

    /// <summary>Waits for gradient copies still in flight; call on the compute thread before the optimizer reads the store.</summary>
    public virtual void Complete() { }

    /// <summary>Called on the compute thread right after <paramref name="unit"/>'s backward has been issued (nothing by default).</summary>
    public virtual void AfterBackward(int unit, FlatParameters parameters, bool first) { }

    /// <summary>Waits for <paramref name="unit"/>'s gradient copy, if one is in flight, and takes its Σg² when it was the step's last; any thread.</summary>
    public virtual void Settle(int unit) { }

    /// <summary>
    /// Before the first step only: the unit's accumulator as fp32 scratch of the unit's length (the initial weights are
    /// made in it; the first micro-batch overwrites it), or empty when the store holds no whole unit (NVMe).
    /// </summary>
    public virtual Span<float> Scratch(int unit) => Span<float>.Empty;

    /// <summary>Frees native buffers, if any.</summary>
    public virtual void Dispose() { }
}

/// <summary>
/// Gradients in CPU RAM: one fp32 accumulator per unit, or, for bf16 training without accumulation, one bf16 copy per
/// unit (<c>bf16</c>: the device's gradients are never summed, so keeping them as computed is exact, and
/// <see cref="Get"/> widens them, losslessly, for the optimizer; half the pinned RAM and half the download). With a GPU's
/// copy streams a unit's first micro-batch is packed (and, into fp32, widened) on the device and copied into its pinned
/// host tensor on the download stream while compute goes on; the host waits for that copy only when it reads the unit
/// (<see cref="Settle"/>: the optimizer, Σg², a later micro-batch's accumulation). With one micro-batch per step its
/// Σg² is taken on the device from the packed gradients and lands with them; otherwise the host takes it from the landed
/// sum, as without copy streams.
/// </summary>
internal sealed class CpuGradientStore : GradientStore
{
    /// <summary>Host tensors of <see cref="_type"/>, one per unit (page-locked with a GPU, so the first micro-batch's gradients land in them in one device transfer).</summary>
    private readonly TorchSharp.torch.Tensor[] _sums;
    /// <summary>The memory behind <see cref="_sums"/>.</summary>
    private readonly Native.HostBuffer[] _buffers;
    /// <summary>Whether the sums are page-locked for a GPU (its downloads land in them directly).</summary>
    private readonly bool _pinned;
    /// <summary>Element type of <see cref="_sums"/>: fp32 sums, or bf16 gradients as the device made them (one micro-batch per step).</summary>
    private readonly TorchSharp.torch.ScalarType _type;
    /// <summary>With a copy stream: first-micro-batch downloads in flight (packed source kept alive until done).</summary>
    private readonly CopyStream? _copies;
    private readonly object _gate = new();
    /// <summary>
    /// Per unit: its download in flight (the packed device source, whether it was the step's last micro-batch, and the
    /// device Σg² copied behind it, if taken there); null when settled.
    /// </summary>
    private readonly (TorchSharp.torch.Tensor Source, bool Last, TorchSharp.torch.Tensor? Squares)?[] _inFlight;
    /// <summary>Units with a download in flight, oldest first.</summary>
    private readonly List<int> _order = [];
    /// <summary>Per unit: held while it settles (<see cref="Settle"/>), so the gate is free meanwhile.</summary>
    private readonly object[] _settling;
    /// <summary>Per unit: the events its download records (scratch mark, done).</summary>
    private readonly (nint Mark, nint Done)[] _unitEvents = [];

    /// <summary>Per unit: its first micro-batch's gradients packed by <see cref="AfterBackward"/>, waiting for their download.</summary>
    private readonly TorchSharp.torch.Tensor?[] _packed;
    /// <summary>Per unit: the device Σg² of <see cref="_packed"/> (an fp64 scalar), while it waits for its download.</summary>
    private readonly TorchSharp.torch.Tensor?[] _packedSquares;
    /// <summary>
    /// With copy streams and one micro-batch per step: page-locked fp64 Σg² per unit, taken on the device from the packed
    /// gradients (<see cref="GradientNorms.UnitSum"/>, the resident trainer's norm) and copied down behind them; null
    /// otherwise (the host takes Σg² from the landed values).
    /// </summary>
    private readonly Native.HostBuffer? _squares;

    /// <inheritdoc/>
    public override bool TakesDeviceNorms => _squares is not null;
    /// <summary>Per unit: whether its last packed gradient's dtype can square past fp32 while finite (bf16, fp32; not fp16).</summary>
    private readonly bool[] _mayOverflow;
    /// <summary>See the constructor's <c>addsApart</c>.</summary>
    private readonly bool _addsApart;
    /// <summary>With copy streams and adds apart: the pinned buffers later micro-batches' downloads take in turn.</summary>
    private readonly GradientStaging? _staging;
    /// <summary>How many later micro-batches' downloads may wait for their adds at once (the staging buffers).</summary>
    private readonly int _maxQueued;

    /// <summary>Downloads allowed in flight: each holds one unit's packed gradient (fp32, or bf16 for a bf16 store) on the device.</summary>
    private const int MaxInFlight = 2;

    /// <param name="unitElements">Elements of each unit.</param>
    /// <param name="trace">Where grad_download spans go.</param>
    /// <param name="norms">Whether to compute each unit's Σg².</param>
    /// <param name="pinned">Page-lock the host tensors (a GPU's downloads land in them directly).</param>
    /// <param name="copies">The GPU's copy streams, if downloads overlap compute.</param>
    /// <param name="bf16">
    /// Keep each unit's bf16 gradient as downloaded instead of an fp32 sum: exact for bf16 training with one micro-batch
    /// per step (<see cref="AiOs.Planner.Memory.EngineMemory.HostGradientsInBf16"/>); a second micro-batch is refused.
    /// </param>
    /// <param name="oneMicroBatch">
    /// Whether every step has one micro-batch: then, with copy streams, each unit's Σg² is taken on the device from its
    /// packed gradients and lands with them, so settling a unit only waits for its copy. Taken on the host, Σg² was a pass
    /// over each unit on the CPU workers inside the download's settle, which CPU Adam beside it (the overlapped and delayed
    /// schedules) or any all-core load slowed several times over; the compute thread waits for that settle once two
    /// downloads are in flight (H100 VM, 2026-12-06: gpt2-medium with its optimizer in RAM, backward 57 ms alone and 140 ms
    /// beside a memory-bound load on every core, downloads of one layer up to 14 ms).
    /// </param>
    /// <param name="addsApart">
    /// Whether a later micro-batch's <see cref="Download"/> only packs (and queues the copy) and the program's GradAccumulate
    /// adds it (<see cref="AddQueued"/>): the program of one process. False (several ranks, whose programs have no
    /// GradAccumulate; the reference trainer): the download adds, synchronously.
    /// </param>
    /// <param name="staging">
    /// With copy streams and <paramref name="addsApart"/>: the pinned buffers later micro-batches' downloads queue their copies
    /// into, in turn (shared by the delayed schedule's two stores). Without copy streams the downloads add in place, and
    /// <paramref name="stagingBuffers"/> of them may wait for their GradAccumulate (Σg²) at once.
    /// </param>
    /// <param name="stagingBuffers">The program's <see cref="ProgramShape.GradientStagingBuffers"/> (the staging's count where given).</param>
    public CpuGradientStore(IReadOnlyList<long> unitElements, SpanTrace trace, bool norms = true, bool pinned = false, CopyStream? copies = null, bool bf16 = false,
        bool oneMicroBatch = false, bool addsApart = false, GradientStaging? staging = null, int stagingBuffers = 2)
        : base(unitElements.Count, trace, norms)
    {
        _type = bf16 ? TorchSharp.torch.ScalarType.BFloat16 : TorchSharp.torch.ScalarType.Float32;
        // Each unit's sum once, outside the managed heap, faulted in now (page-locked for a GPU): see Native.HostBuffer.
        _buffers = Native.HostBuffer.AllocateMany(unitElements, _type, pinned);
        _sums = _buffers.Select(b => b.Tensor).ToArray();
        _pinned = pinned;
        _copies = pinned ? copies : null;
        _addsApart = addsApart;
        _staging = _copies is null ? null : staging;
        _maxQueued = _staging?.Count ?? stagingBuffers;
        _inFlight = new (TorchSharp.torch.Tensor, bool, TorchSharp.torch.Tensor?)?[unitElements.Count];
        _packed = new TorchSharp.torch.Tensor?[unitElements.Count];
        _packedSquares = new TorchSharp.torch.Tensor?[unitElements.Count];
        _mayOverflow = new bool[unitElements.Count];
        if (_copies is not null && norms && (oneMicroBatch || bf16))
            _squares = Native.HostBuffer.Allocate(unitElements.Count, TorchSharp.torch.ScalarType.Float64, pin: true);
        _settling = unitElements.Select(_ => new object()).ToArray();
        if (_copies is not null) _unitEvents = unitElements.Select(_ => (_copies.NewEvent(), _copies.NewEvent())).ToArray();
    }

    /// <summary>Whether the store keeps bf16 gradients rather than fp32 sums.</summary>
    internal bool HoldsBf16 => _type == TorchSharp.torch.ScalarType.BFloat16;

    /// <summary>Host bytes of the unit's gradient (what it keeps, before page rounding).</summary>
    internal long HostBytes(int unit) => _sums[unit].numel() * _sums[unit].element_size();

    /// <inheritdoc/>
    /// <remarks>
    /// On a GPU the first micro-batch is widened to fp32 on the device and lands in the pinned accumulator in one
    /// transfer; a bf16 store moves the bf16 gradients as they are (2 bytes per element).
    /// </remarks>
    public override long DownloadBytes(FlatParameters parameters, bool first) =>
        HoldsBf16 ? 2 * parameters.Layout.Elements : _pinned && first ? 4 * parameters.Layout.Elements : parameters.ByteLength;

    /// <summary>The unit's fp32 sum (fp32 store only).</summary>
    private Span<float> Sum(int unit) => MemoryMarshal.Cast<byte, float>(_sums[unit].bytes);

    /// <summary>The unit's bf16 gradient bits (bf16 store only).</summary>
    private Span<ushort> Bf16(int unit) => MemoryMarshal.Cast<byte, ushort>(_sums[unit].bytes);

    /// <summary>Σg² of the unit from the host values (bf16: of the values widened, the same bits an fp32 sum of them gives).</summary>
    private double SquaresOf(int unit) => HoldsBf16 ? SpanMath.SumOfSquaresBf16(Bf16(unit)) : SpanMath.SumOfSquares(Sum(unit));

    /// <inheritdoc/>
    /// <remarks>A bf16 store holds no fp32 unit: the initial weights are made in worker arrays instead.</remarks>
    public override Span<float> Scratch(int unit) => HoldsBf16 ? Span<float>.Empty : Sum(unit);

    public override void Accumulate(int unit, FlatParameters parameters, bool first, bool last)
    {
        if (HoldsBf16)
        {
            using (Begin(unit, parameters)) TakeBf16(unit, parameters, first);
        }
        // The first micro-batch overwrites the accumulator (no separate clearing pass over it).
        else DrainTensor(unit, parameters, _sums[unit], overwrite: first);
        if (last && ComputesNorms) SumOfSquares[unit] = SquaresOf(unit);
    }

    /// <summary>The unit's device gradients, packed in bf16, copied into its host tensor as they are (bf16 store, no copy stream).</summary>
    private void TakeBf16(int unit, FlatParameters parameters, bool first)
    {
        using TorchSharp.torch.Tensor packed = PackBf16(unit, parameters, first);
        _sums[unit].copy_(packed);
    }

    /// <summary>
    /// The unit's gradients packed back to back in the store's type on the device, refusing what the store cannot hold
    /// exactly: a bf16 store takes one micro-batch of bf16 gradients (no sum, no narrowing).
    /// </summary>
    private static TorchSharp.torch.Tensor PackBf16(int unit, FlatParameters parameters, bool first)
    {
        if (!first)
            throw new InvalidOperationException($"Unit {unit}: the bf16 gradient store holds one micro-batch per step and cannot sum a second (gradient accumulation needs the fp32 store).");
        if (parameters.Flat.dtype != TorchSharp.torch.ScalarType.BFloat16)
            throw new InvalidOperationException($"Unit {unit}: the bf16 gradient store takes bf16 gradients, not {parameters.Flat.dtype} (fp32 and fp16 training need the fp32 store).");
        return parameters.TakePackedGradients(TorchSharp.torch.ScalarType.BFloat16);
    }

    /// <summary>The unit's gradients packed on the device for a copy-stream download into its host tensor.</summary>
    private TorchSharp.torch.Tensor Pack(int unit, FlatParameters parameters, bool first) =>
        HoldsBf16 ? PackBf16(unit, parameters, first) : parameters.TakePackedGradients(TorchSharp.torch.ScalarType.Float32);

    /// <inheritdoc/>
    /// <remarks>
    /// With copy streams, the first micro-batch's gradients are packed here, on the compute thread, and the download's
    /// mark recorded right behind the pack. Packed by the download worker instead, they queued on the default stream
    /// behind whatever compute the trainer had issued since, so every download waited for the next units' backward and
    /// the next upload into the slot for the download (issue 13's grid on the H200, 2026-12-05: 95–230 ms of stalls).
    /// </remarks>
    public override void AfterBackward(int unit, FlatParameters parameters, bool first)
    {
        if (_copies is null || !first) return;
        Settle(unit);
        TorchSharp.torch.Tensor packed = Pack(unit, parameters, first);
        TorchSharp.torch.Tensor? squares;
        try
        {
            squares = _squares is null ? null : DeviceSquares(packed);
        }
        catch
        {
            packed.Dispose();
            throw;
        }
        _mayOverflow[unit] = GradientNorms.MaySpuriouslyOverflow(parameters.Flat.dtype);
        _copies.Record(_unitEvents[unit].Mark, 0);
        lock (_gate)
        {
            // A step that failed between a unit's backward and its download left its pack here: free it, not the finalizer.
            _packed[unit]?.Dispose();
            _packedSquares[unit]?.Dispose();
            _packed[unit] = packed;
            _packedSquares[unit] = squares;
        }
    }

    /// <summary>Σg² of packed gradients as an fp64 scalar on their device, owned by the caller (outside any dispose scope).</summary>
    private static TorchSharp.torch.Tensor DeviceSquares(TorchSharp.torch.Tensor packed)
    {
        using var scope = TorchSharp.torch.NewDisposeScope();
        using var _ = TorchSharp.torch.no_grad();
        return GradientNorms.UnitSum(packed).DetachFromDisposeScope();
    }

    /// <summary>
    /// The unit's Σg² as it landed from the device; a +inf that a finite bf16 or fp32 gradient can make by squaring past fp32
    /// in a row's norm is taken again from the host values, in fp64 (as <see cref="GradientNorms.Fp32"/> does). An fp16
    /// gradient's +inf is always real (its values are at most 65504), so an fp16 overflow step, routine under loss scaling,
    /// pays no host pass.
    /// </summary>
    private double LandedSquares(int unit)
    {
        double squares = BitConverter.Int64BitsToDouble(Marshal.ReadInt64(_squares!.Address, sizeof(double) * unit));
        return double.IsPositiveInfinity(squares) && _mayOverflow[unit] ? SquaresOf(unit) : squares;
    }

    public override void Download(int unit, FlatParameters parameters, bool first, bool last)
    {
        TorchSharp.torch.Tensor? prepacked, squares;
        lock (_gate)
        {
            prepacked = _packed[unit];
            squares = _packedSquares[unit];
            _packed[unit] = null;
            _packedSquares[unit] = null;
        }
        if (prepacked is null) Settle(unit);
        if (_copies is not null && first)
        {
            // The oldest settles outside the gate (see Settle): only this worker adds downloads, so the count cannot grow meanwhile.
            while (true)
            {
                int oldest;
                lock (_gate)
                {
                    if (_order.Count < MaxInFlight) break;
                    oldest = _order[0];
                }
                Settle(oldest);
            }
            var (mark, done) = _unitEvents[unit];
            TorchSharp.torch.Tensor packed;
            if (prepacked is not null)
            {
                packed = prepacked;
                try
                {
                    _copies.DownloadAfter(_sums[unit], packed, mark, done, squares is null ? null : (_squares!.Address + sizeof(double) * unit, squares));
                }
                catch
                {
                    packed.Dispose();
                    squares?.Dispose();
                    throw;
                }
            }
            else
            {
                // Packed on the default stream after the backward that made the gradients; the download stream waits for the packing.
                packed = Pack(unit, parameters, first);
                _copies.Download(_sums[unit], packed, mark, done);
            }
            lock (_gate)
            {
                _inFlight[unit] = (packed, last, squares);
                _order.Add(unit);
            }
            return;
        }
        if (HoldsBf16) TakeBf16(unit, parameters, first);
        else if (_addsApart && !first)
        {
            // With copy streams the add and Σg² are the program's GradAccumulate, on the host-sums thread.
            if (_copies is not null) QueueThroughCopyStream(unit, parameters, last);
            else
            {
                // Without: added now, in place from a CPU device's gradients or through the parameters' reused pinned staging
                // (packing a copy for the add to read later cost a CPU-only gpt2 step 40%); the GradAccumulate takes Σg².
                EnsureRoomToQueue();
                parameters.DrainGradientsInto(_sums[unit], overwrite: false);
                lock (_gate) _queued.Enqueue(new Queued(unit, null, null, -1, last));
            }
            return;
        }
        else parameters.DrainGradientsInto(_sums[unit], overwrite: first);
        if (last && ComputesNorms) SumOfSquares[unit] = SquaresOf(unit);
    }

    /// <summary>
    /// A later micro-batch's download whose GradAccumulate has not run yet: its unit, with copy streams its packed device
    /// gradients (kept alive until their copy has landed), their staged view and the staging buffer it is in (null, null, −1
    /// where the download added them itself), and whether it was the step's last micro-batch.
    /// </summary>
    private readonly record struct Queued(int Unit, TorchSharp.torch.Tensor? Packed, TorchSharp.torch.Tensor? Staged, int Buffer, bool Last);

    /// <summary>Later micro-batches' downloads waiting for their GradAccumulate, in program order (under <see cref="_gate"/>).</summary>
    private readonly Queue<Queued> _queued = new();

    private void EnsureRoomToQueue()
    {
        lock (_gate)
            if (_queued.Count >= _maxQueued)
                throw new InvalidOperationException($"Unit {_queued.Peek().Unit}'s later micro-batch was downloaded and never accumulated; the step program orders each download after the add {_maxQueued} downloads back.");
    }

    /// <summary>
    /// A later micro-batch of one process on a GPU with copy streams (the program's GradDownload): the unit's gradients
    /// packed in the training precision on the default stream and their copy queued on the download stream into the next
    /// pinned staging buffer (compute queued behind the packing never waits for the copy, as it did for a copy on the default
    /// stream). It returns without waiting, so the device slot the gradients came from is free now and the downloading thread
    /// goes on to the next unit; <see cref="AddQueued"/> (the program's GradAccumulate, on the host-sums thread) waits for the
    /// copy and adds. Only the D2h worker calls it.
    /// </summary>
    private void QueueThroughCopyStream(int unit, FlatParameters parameters, bool last)
    {
        EnsureRoomToQueue();
        TorchSharp.torch.Tensor packed = parameters.TakePackedGradients(parameters.Flat.dtype);
        try
        {
            if (_staging is null) throw new InvalidOperationException($"Unit {unit}: a later micro-batch's download with copy streams needs the pinned gradient staging, which this store was not given.");
            var (staged, buffer) = _staging.Download(unit, packed);
            lock (_gate) _queued.Enqueue(new Queued(unit, packed, staged, buffer, last));
        }
        catch
        {
            packed.Dispose();
            throw;
        }
    }

    /// <summary>
    /// GradAccumulate, as the step program's handler: with copy streams, waits for the copy <see cref="Download"/> queued for
    /// <paramref name="unit"/>'s later micro-batch, frees its device source, then widens it and adds it into the sum on the host
    /// over the cores (<see cref="FlatParameters.AddStagedInto"/>: the same bits as the default-stream path) and frees its
    /// staging buffer; then, after the step's last micro-batch, takes the unit's Σg² from the sum. Adds come in the downloads'
    /// order.
    /// </summary>
    public override void AddQueued(int unit)
    {
        Queued queued;
        lock (_gate)
            if (!_queued.TryPeek(out queued) || queued.Unit != unit)
                throw new InvalidOperationException($"GradAccumulate of unit {unit} found no download of it queued next; the step program orders the adds as their downloads.");
        if (queued.Staged is not null)
        {
            // Kept queued until the copy has landed: a failed wait leaves DropQueued to wait again before freeing its source.
            using (CopyWait(unit)) _staging!.Synchronize(queued.Buffer);
            lock (_gate) _queued.Dequeue();
            try
            {
                queued.Packed!.Dispose();
                FlatParameters.AddStagedInto(Sum(unit), queued.Staged, overwrite: false);
            }
            finally
            {
                queued.Staged.Dispose();
                _staging.Release(queued.Buffer);
            }
        }
        else lock (_gate) _queued.Dequeue();
        if (queued.Last && ComputesNorms) SumOfSquares[unit] = SquaresOf(unit);
    }

    public override void DropQueued()
    {
        // Each copy must land before its device source and staging go; every one is freed even if a wait fails.
        List<Exception>? failures = null;
        while (true)
        {
            Queued queued;
            lock (_gate)
                if (!_queued.TryDequeue(out queued)) break;
            try
            {
                if (queued.Staged is not null) _staging!.Synchronize(queued.Buffer);
            }
            catch (Exception e)
            {
                (failures ??= []).Add(e);
            }
            finally
            {
                queued.Packed?.Dispose();
                queued.Staged?.Dispose();
                if (queued.Buffer >= 0) _staging!.Release(queued.Buffer);
            }
        }
        if (failures is not null) throw new AggregateException("Waiting for queued gradient copies failed.", failures);
    }

    /// <inheritdoc/>
    /// <remarks>
    /// Waits for the unit's copy, then sets its Σg² when the copy was the step's last micro-batch: as it landed from the
    /// device (one micro-batch per step), else a pass over the host values on the CPU workers. Under the unit's own lock,
    /// not the store's gate, so the compute thread's next <see cref="AfterBackward"/> (which takes the gate to hand its
    /// packed unit over) never waits for it. The host pass was what made a settle slow beside CPU Adam or any other load
    /// on the cores (2026-12-06: gpt2-medium's backward with its optimizer in RAM 57 ms alone, 140 ms beside a memory-bound
    /// load on every core, 86 ms with Σg² from the device; docs/validation/gpu-2026-12-06-session13.md). A second caller
    /// for the same unit waits on its lock and returns with the unit settled, Σg² included.
    /// </remarks>
    public override void Settle(int unit)
    {
        lock (_settling[unit])
        {
            (TorchSharp.torch.Tensor Source, bool Last, TorchSharp.torch.Tensor? Squares) copy;
            lock (_gate)
            {
                if (_inFlight[unit] is not { } inFlight) return;
                copy = inFlight;
            }
            _copies!.Synchronize(_unitEvents[unit].Done);
            copy.Source.Dispose();
            copy.Squares?.Dispose();
            if (copy.Last && ComputesNorms) SumOfSquares[unit] = copy.Squares is null ? SquaresOf(unit) : LandedSquares(unit);
            lock (_gate)
            {
                _inFlight[unit] = null;
                _order.Remove(unit);
            }
        }
    }

    public override void Complete()
    {
        for (int u = 0; u < _inFlight.Length; u++) Settle(u);
    }

    public override ReadOnlySpan<float> Get(SubGroup g, Span<float> scratch)
    {
        Settle(g.Unit);
        if (!HoldsBf16) return Sum(g.Unit).Slice((int)g.Offset, g.Elements);
        // bf16 → fp32 is exact: the optimizer, clipping and Σg² see the values an fp32 store would hold.
        Span<float> into = scratch[..g.Elements];
        PrecisionCast.WidenBf16(Bf16(g.Unit).Slice((int)g.Offset, g.Elements), into);
        return into;
    }

    public override bool TryGetBf16(SubGroup g, out ReadOnlySpan<ushort> bits)
    {
        if (!HoldsBf16)
        {
            bits = default;
            return false;
        }
        Settle(g.Unit);
        bits = Bf16(g.Unit).Slice((int)g.Offset, g.Elements);
        return true;
    }

    public override void Dispose()
    {
        // Wait for the copies before their device sources are freed.
        try
        {
            Complete();
        }
        finally
        {
            DropQueued();
        }
        // Packs a failed step left without their download.
        lock (_gate)
            for (int u = 0; u < _packed.Length; u++)
            {
                _packed[u]?.Dispose();
                _packedSquares[u]?.Dispose();
                _packed[u] = _packedSquares[u] = null;
            }
        foreach (Native.HostBuffer b in _buffers) b.Dispose();
        _squares?.Dispose();
        base.Dispose();
    }
}

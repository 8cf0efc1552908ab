using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Engine.Execution;

/// <summary>
/// Page-locked staging for later micro-batches' gradient downloads of one process: <see cref="Count"/> buffers, each the
/// largest unit's gradient in the training precision, taken in turn by the step program's <see cref="OpKind.GradDownload"/>s
/// and read by their <see cref="OpKind.GradAccumulate"/>s (<see cref="ProgramShape.GradientStagingBuffers"/>: the program
/// orders each download after the add that read its buffer last). The delayed schedule's two gradient stores share one set,
/// since one step's downloads go into one store. Each buffer has its own events, so an add waits for its own copy only.
/// </summary>
internal sealed class GradientStaging : IDisposable
{
    private readonly CopyStream _copies;
    private readonly long _elements;
    private readonly Buffer[] _buffers;
    private readonly object _gate = new();
    /// <summary>The buffer the next download takes (only the downloading thread moves it).</summary>
    private int _next;

    /// <summary>One buffer: its memory (made on first use), its events (scratch mark, copy done), and the unit it holds until added.</summary>
    private sealed class Buffer
    {
        public Native.HostBuffer? Memory;
        public nint Mark, Done;
        public int? Unit;
    }

    /// <param name="copies">The GPU's copy streams.</param>
    /// <param name="largestUnit">Elements of the largest unit whose gradients it stages.</param>
    /// <param name="count">How many buffers (<see cref="ProgramShape.GradientStagingBuffers"/> of the program the engine runs).</param>
    public GradientStaging(CopyStream copies, long largestUnit, int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        _copies = copies;
        _elements = largestUnit;
        _buffers = Enumerable.Range(0, count).Select(_ => new Buffer()).ToArray();
    }

    /// <summary>How many buffers the downloads take in turn.</summary>
    public int Count => _buffers.Length;

    /// <summary>
    /// Queues the copy of <paramref name="packed"/> (a unit's gradients, packed on the default stream) into the next buffer on
    /// the download stream, behind the packing, without waiting. Returns the staged view (the caller's to dispose, unread until
    /// <see cref="Synchronize"/>) and the buffer's index, held for <paramref name="unit"/> until <see cref="Release"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">The next buffer still holds gradients not added (the program's order was broken).</exception>
    public (TorchSharp.torch.Tensor Staged, int Buffer) Download(int unit, TorchSharp.torch.Tensor packed)
    {
        int index = _next;
        Buffer b = _buffers[index];
        lock (_gate)
            if (b.Unit is int held)
                throw new InvalidOperationException($"Gradient staging buffer {index} still holds unit {held}'s later micro-batch, not yet added; the step program orders each download after the add that read its buffer last.");
        long elements = packed.numel();
        if (elements > _elements) throw new ArgumentException($"Unit {unit}'s {elements} gradients do not fit the staging of the largest unit ({_elements}).", nameof(packed));
        if (b.Memory is null || b.Memory.Tensor.dtype != packed.dtype)
        {
            // The events first: making them binds the copy streams' CUDA context to this thread, where the pinning needs it.
            if (b.Mark == 0) (b.Mark, b.Done) = (_copies.NewEvent(), _copies.NewEvent());
            b.Memory?.Dispose();
            b.Memory = null;
            b.Memory = Native.HostBuffer.Allocate(_elements, packed.dtype, pin: true);
        }
        TorchSharp.torch.Tensor staged = b.Memory.Tensor.narrow(0, 0, elements);
        try
        {
            _copies.Download(staged, packed, b.Mark, b.Done);
        }
        catch
        {
            staged.Dispose();
            throw;
        }
        lock (_gate) b.Unit = unit;
        _next = (index + 1) % _buffers.Length;
        return (staged, index);
    }

    /// <summary>Blocks until the copy into buffer <paramref name="index"/> has landed.</summary>
    public void Synchronize(int index) => _copies.Synchronize(_buffers[index].Done);

    /// <summary>Buffer <paramref name="index"/> has been read (its unit added): the download that comes round to it may take it.</summary>
    public void Release(int index)
    {
        lock (_gate) _buffers[index].Unit = null;
    }

    /// <summary>Frees the buffers (their copies must have landed: the stores' <c>DropQueued</c> waits for them).</summary>
    public void Dispose()
    {
        foreach (Buffer b in _buffers)
        {
            b.Memory?.Dispose();
            b.Memory = null;
        }
    }
}

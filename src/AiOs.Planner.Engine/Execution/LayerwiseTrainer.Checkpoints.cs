using AiOs.Planner.Engine.Native;
using AiOs.Planner.Simulation.Program;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Execution;

/// <summary>
/// Activation checkpoints in CPU RAM (<c>--offload-activations cpu</c>, DeepSpeed's <c>cpu_checkpointing</c>): the program's
/// <see cref="OpKind.ActivationOffload"/> after a layer's forward copies its input into that layer's host buffer and frees the
/// device tensor; <see cref="OpKind.ActivationFetch"/> brings it back into one of two device places before its recompute.
/// The program decides when (a forward waits for the copy out two layers back; a copy back waits for the backward two layers
/// up, which last read its place), so the device holds at most two checkpoints.
/// </summary>
/// <remarks>
/// Host buffers are page-locked on a GPU, one per layer, reused by every micro-batch (a micro-batch's copies back all end
/// before the next one's copies out begin). On a CPU device the host buffer is a separate tensor, so the copies are real
/// and the results the same as without offload. The embedding's output is layer 0's input: with offload it is made without
/// autograd and the embedding is run again (same dropout mask) for its backward, so no graph pins layer 0's input.
/// </remarks>
public sealed partial class LayerwiseTrainer
{
    /// <summary>Whether the program moves checkpoints (set from the program in the constructor).</summary>
    private readonly bool _offloadsCheckpoints;
    /// <summary>Per layer, its checkpoint's host copy (page-locked on a GPU); made at the first forward, remade if the micro-batch's shape changes.</summary>
    private HostBuffer[] _checkpointHost = [];
    /// <summary>The two device places checkpoints come back into (layer i uses place i mod 2).</summary>
    private readonly Tensor?[] _checkpointPlaces = new Tensor?[2];
    /// <summary>With copy streams: the event the D2h worker waits on before it frees a copied checkpoint.</summary>
    private nint _checkpointCopied;

    private void AddCheckpointHandlers(Dictionary<OpKind, Action<Operation>> handlers)
    {
        handlers[OpKind.ActivationOffload] = CopyCheckpointOut;
        handlers[OpKind.ActivationFetch] = CopyCheckpointBack;
    }

    /// <summary>Compute thread, layer 0's forward: host buffers and device places shaped like <paramref name="input"/> (made once).</summary>
    private void EnsureCheckpointBuffers(Tensor input)
    {
        long elements = input.numel();
        if (_checkpointHost.Length == _spec.NumLayers && _checkpointHost[0].Tensor.numel() == elements
            && _checkpointPlaces[0] is { } place && place.dtype == input.dtype && place.shape.SequenceEqual(input.shape)) return;
        bool gpu = _device.type == TorchSharp.DeviceType.CUDA;
        // A previous shape's copies may still be queued: let them land before their buffers go.
        if (gpu && _checkpointHost.Length > 0) cuda.synchronize();
        DisposeCheckpointBuffers();
        _checkpointHost = HostBuffer.AllocateMany(Enumerable.Repeat(elements, _spec.NumLayers).ToArray(), input.dtype, pin: gpu);
        // Made during a micro-batch: its dispose scope must not take the buffers' tensor views with it.
        foreach (HostBuffer b in _checkpointHost) b.Tensor.DetachFromDisposeScope();
        for (int i = 0; i < _checkpointPlaces.Length; i++)
            _checkpointPlaces[i] = empty(input.shape, input.dtype, _device).DetachFromDisposeScope();
        if (_copies is not null && _checkpointCopied == 0) _checkpointCopied = _copies.NewEvent();
    }

    /// <summary>D2h: layer i's input into its host buffer; the device tensor is freed once the copy has landed.</summary>
    private void CopyCheckpointOut(Operation op)
    {
        int i = op.Unit.Number;
        Tensor source = _micro!.LayerInputs[i] ?? throw new InvalidOperationException($"{op}: layer {i} has no input to copy out.");
        HostBuffer host = _checkpointHost[i];
        if (_copies is not null)
        {
            if (!source.is_contiguous()) throw new InvalidOperationException($"{op}: layer {i}'s input is not contiguous; it cannot be copied out as one block.");
            // The stream already waits for the forward that made the source (StreamOrder); the host waits for the copy, so the free is safe.
            _copies.DownloadAndWait(host.Address, source, _checkpointCopied);
        }
        else
        {
            using Tensor flat = source.reshape(-1);
            host.Tensor.copy_(flat);
        }
        long bytes = source.numel() * source.element_size();
        _micro.LayerInputs[i] = null!;
        // Detached from the compute thread's dispose scope when stored (Forward), so freeing it here touches no scope.
        source.Dispose();
        Io.Download(bytes);
    }

    /// <summary>H2d: layer i's checkpoint from its host buffer into device place i mod 2, which becomes the layer's input.</summary>
    private void CopyCheckpointBack(Operation op)
    {
        int i = op.Unit.Number;
        Tensor place = _checkpointPlaces[i % 2] ?? throw new InvalidOperationException($"{op}: no checkpoint place (no forward ran).");
        HostBuffer host = _checkpointHost[i];
        if (_copies is not null)
            // The stream waits for the backward that last read this place (StreamOrder); compute waits for this copy.
            _copies.UploadQueued(place, host.Address, place.numel() * place.element_size());
        else
        {
            using Tensor flat = place.view(-1);
            flat.copy_(host.Tensor);
        }
        _micro!.LayerInputs[i] = place;
        Io.Upload(place.numel() * place.element_size());
    }

    /// <summary>Layer inputs a failed step left on the device outside the dispose scope (copied out or not yet).</summary>
    private void ReleaseCheckpointInputs(MicroBatchState micro)
    {
        if (!_offloadsCheckpoints) return;
        foreach (Tensor? t in micro.LayerInputs)
            if (t is not null && !_checkpointPlaces.Contains(t)) t.Dispose();
    }

    private void DisposeCheckpointBuffers()
    {
        foreach (HostBuffer b in _checkpointHost) b.Dispose();
        _checkpointHost = [];
        for (int i = 0; i < _checkpointPlaces.Length; i++)
        {
            _checkpointPlaces[i]?.Dispose();
            _checkpointPlaces[i] = null;
        }
    }
}

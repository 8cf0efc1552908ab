using AiOs.Planner.Engine.Collectives;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Simulation.Program;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Execution;

/// <summary>The offloaded trainer's part in a data-parallel group (see <see cref="DataParallel"/>).</summary>
public sealed partial class LayerwiseTrainer
{
    /// <summary>Per unit: its reduced gradient shard between the unit's ReduceScatter and its GradDownload.</summary>
    private readonly Dictionary<int, FlatParameters> _reduced = [];

    /// <summary>
    /// ReduceScatter, as the step program's handler: the unit's gradients of this micro-batch, padded to the shard layout,
    /// averaged across ranks; this rank keeps its shard for the download (in the training precision; fp16 in fp32).
    /// </summary>
    private void ReduceScatter(Operation op)
    {
        int unit = _params.UnitOf(op.Unit);
        FlatParameters full = ParameterSwapper.ParametersOf(_params.ModuleIn(unit, op.DeviceSlot));
        var layout = new ShardLayout(full.Layout.Elements, _ranks!.WorldSize);
        ScalarType type = CollectiveTypes.ReducedIn(full.Flat.dtype);
        Tensor shard;
        using (Tensor packed = full.TakePackedGradients(type))
        using (var scope = NewDisposeScope())
        {
            Tensor send = layout.Padding == 0 ? packed : cat([packed, zeros([layout.Padding], type, packed.device)], 0);
            shard = empty([layout.ShardElements], type, packed.device).DetachFromDisposeScope();
            _ranks.ReduceScatter(Native.CudaDriver.DataOf(send), Native.CudaDriver.DataOf(shard), layout.ShardElements,
                CollectiveTypes.Carrier(type), ReduceOperation.Mean);
        }
        lock (_reduced) _reduced[unit] = FlatParameters.CarryingGradient(shard);
    }

    /// <summary>The unit's reduced gradient shard, handed to its download (which disposes it).</summary>
    private FlatParameters TakeReduced(int unit)
    {
        lock (_reduced)
        {
            if (!_reduced.Remove(unit, out FlatParameters? shard))
                throw new InvalidOperationException($"Unit {unit}'s gradients are downloaded before their reduce-scatter: the program was built for one rank.");
            return shard;
        }
    }

    /// <summary>
    /// After the step's backward, before any decision that depends on it: the ranks agree on the step's loss (the mean of
    /// theirs), its tokens (the sum), whether any rank saw a non-finite loss, and each unit's Σg² (the sum over the disjoint
    /// shards), so every rank clips, scales and skips alike.
    /// </summary>
    /// <param name="norms">Whether the Σg² are summed too (false under the overlapped schedule, whose updates are done).</param>
    private void AgreeAcrossRanks(bool norms = true)
    {
        (_stepLoss, _stepTokens, bool anyNonFinite) = DataParallel.AgreeOnStep(_ranks!, _stepLoss, _stepTokens, _nonFinite is not null, norms ? _grads.SumOfSquares : null);
        if (anyNonFinite) Interlocked.CompareExchange(ref _nonFinite, "the loss of another rank", null);
    }

    private void DisposeReduced()
    {
        lock (_reduced)
        {
            foreach (FlatParameters p in _reduced.Values) p.Dispose();
            _reduced.Clear();
        }
    }
}

using AiOs.Planner.Engine.Collectives;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Engine.Execution;

/// <summary>
/// The engine's data parallelism over several ranks (one process per GPU, or several CPU processes in tests): each rank
/// computes its own micro-batches of the step's global batch, gradients are averaged across ranks by reduce-scatter, and
/// each rank updates its shard of every unit (<see cref="ShardLayout"/>). Offloaded parameters are partitioned too
/// (ZeRO-3, gathered before each use); parameters kept on the device are whole on every rank (ZeRO-2, the updated
/// shards gathered after the optimizer). The losses equal one process's with the same global batch (rank r takes the
/// step's micro-batches r·A … r·A + A − 1 for A micro-batches per rank), up to the order of floating-point sums.
/// </summary>
public static class DataParallel
{
    /// <summary>
    /// The group a trainer joins: null for one process (no collectives, or a world of one); refuses what the engine
    /// cannot yet run with several ranks, naming the setting and the fix.
    /// </summary>
    /// <exception cref="ArgumentException">The settings need what several ranks cannot give.</exception>
    public static ICollectives? Check(ICollectives? ranks, TrainingSettings settings, GradientClipping? clipping)
    {
        if (ranks is not { WorldSize: > 1 }) return null;
        if (OverlappedProblem(settings, clipping, ranks.WorldSize) is { } problem) throw new ArgumentException(problem + ".", nameof(settings));
        return ranks;
    }

    /// <summary>
    /// Why the overlapped schedule cannot run on <paramref name="ranks"/> ranks with <paramref name="clipping"/>, or null:
    /// it updates each layer as its gradients land, so per-layer clipping would scale each rank's shard by that shard's
    /// norm instead of the layer's. Without clipping it runs; a non-finite value stops the run after the step, as on one rank.
    /// </summary>
    public static string? OverlappedProblem(TrainingSettings settings, GradientClipping? clipping, int ranks) =>
        settings.Schedule == StepSchedule.Overlapped && ranks > 1 && clipping is not null
            ? $"--schedule overlapped with --clip-grad-norm is not supported with --gpus {ranks} yet: each layer is updated as its gradients land, " +
              "before the ranks have summed its norm; drop --clip-grad-norm or use --schedule deepspeed"
            : null;

    /// <summary>The settings each rank's step program is built from: one host of <paramref name="ranks"/> GPUs (the program runs the engine's ZeRO stage, <see cref="Simulation.Program.ProgramShape.EngineStage"/>).</summary>
    public static TrainingSettings ProgramSettings(TrainingSettings settings, int ranks) => settings with { GpusPerNode = Math.Max(1, ranks), Nodes = 1 };

    /// <summary>The index in the step's global batch of micro-batch <paramref name="local"/> of this rank.</summary>
    public static int GlobalMicroBatch(int local, int perRank, ICollectives? ranks) => (ranks?.Rank ?? 0) * perRank + local;

    /// <summary>This rank's padded shard of a whole unit's <paramref name="unit"/> values.</summary>
    public static float[] ShardOf(ReadOnlySpan<float> unit, ICollectives ranks)
    {
        var layout = new ShardLayout(unit.Length, ranks.WorldSize);
        float[] shard = new float[layout.ShardElements];
        layout.Shard(unit, ranks.Rank, shard);
        return shard;
    }

    /// <summary>The whole unit of <paramref name="elements"/> from every rank's <paramref name="shard"/> (a collective: every rank calls it).</summary>
    public static unsafe float[] Unshard(float[] shard, long elements, ICollectives ranks)
    {
        var layout = new ShardLayout(elements, ranks.WorldSize);
        if (shard.Length != layout.ShardElements) throw new ArgumentException($"A shard of {elements} elements over {ranks.WorldSize} ranks holds {layout.ShardElements}, not {shard.Length}.", nameof(shard));
        float[] gathered = new float[layout.PaddedElements];
        OnHost(ranks, shard, gathered, (send, receive) => ranks.AllGather(send, receive, layout.ShardElements, CollectiveElement.Float32));
        return gathered[..(int)elements];
    }

    /// <summary>
    /// What the ranks agree on after a step's backward: its loss (the mean of theirs), its tokens (the sum), whether any
    /// saw a non-finite loss, and <paramref name="sums"/> (per-rank partial sums, e.g. each unit's Σg² over disjoint shards)
    /// summed in place. One fp64 all-reduce; every rank calls it at the same point.
    /// </summary>
    public static (double Loss, long Tokens, bool AnyNonFinite) AgreeOnStep(ICollectives ranks, double loss, long tokens, bool nonFinite, double[]? sums = null)
    {
        sums ??= [];
        double[] values = [loss, tokens, nonFinite ? 1 : 0, .. sums];
        SumInPlace(values, ranks);
        values.AsSpan(3).CopyTo(sums);
        return (values[0] / ranks.WorldSize, (long)values[1], values[2] > 0);
    }

    /// <summary>Every rank's <paramref name="values"/> summed, in place (a collective: every rank calls it with as many values).</summary>
    public static void SumInPlace(double[] values, ICollectives ranks) =>
        OnHost(ranks, values, values, (send, receive) => ranks.AllReduce(send, receive, values.Length, CollectiveElement.Float64, ReduceOperation.Sum));

    /// <summary>Runs a collective on host arrays: in place on host collectives, through device copies for collectives on a GPU.</summary>
    private static unsafe void OnHost<TIn, TOut>(ICollectives ranks, TIn[] send, TOut[] receive, Action<nint, nint> collective)
        where TIn : unmanaged where TOut : unmanaged
    {
        if (!ranks.OnDevice)
        {
            fixed (TIn* s = send)
            fixed (TOut* r = receive)
                collective((nint)s, (nint)r);
            return;
        }
        using var scope = TorchSharp.torch.NewDisposeScope();
        // The rank's own GPU: NCCL's buffers must be on its communicator's device.
        var device = new TorchSharp.torch.Device(TorchSharp.DeviceType.CUDA, ranks is NcclCollectives nccl ? nccl.DeviceOrdinal : 0);
        var sendDevice = TorchSharp.torch.tensor(System.Runtime.InteropServices.MemoryMarshal.AsBytes<TIn>(send).ToArray(), device: device);
        var receiveDevice = TorchSharp.torch.zeros([receive.Length * sizeof(TOut)], TorchSharp.torch.ScalarType.Byte, device);
        collective(Native.CudaDriver.DataOf(sendDevice), Native.CudaDriver.DataOf(receiveDevice));
        if (ranks is NcclCollectives queued) queued.Synchronize();
        byte[] back = receiveDevice.cpu().bytes.ToArray();
        back.AsSpan().CopyTo(System.Runtime.InteropServices.MemoryMarshal.AsBytes(receive.AsSpan()));
    }
}

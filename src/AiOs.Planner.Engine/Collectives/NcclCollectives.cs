using System.Diagnostics;
using AiOs.Planner.Engine.Native;

namespace AiOs.Planner.Engine.Collectives;

/// <summary>How one rank joins an <see cref="NcclCollectives"/> group.</summary>
/// <param name="Folder">The rendezvous folder the launcher gave every rank: rank 0 writes NCCL's unique id there.</param>
/// <param name="Rank">This rank.</param>
/// <param name="WorldSize">The number of ranks.</param>
/// <param name="Device">This rank's GPU (its LOCAL_RANK): made current on the calling thread before the communicator is built.</param>
/// <param name="Stream">The CUDA stream collectives are queued on (0: the legacy default stream, where TorchSharp computes; or one from the CUDA driver).</param>
public sealed record NcclOptions(string Folder, int Rank, int WorldSize, int Device, nint Stream)
{
    /// <summary>The file in <see cref="Folder"/> that carries the unique id.</summary>
    public const string IdFileName = "nccl-unique-id";

    /// <summary>How long ranks other than 0 wait for the unique id.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(120);
}

/// <summary>
/// <see cref="ICollectives"/> on GPUs through NCCL (P/Invoke into <c>libnccl.so.2</c>, see <see cref="NcclLibrary"/>),
/// queued on <see cref="NcclOptions.Stream"/>: each call returns once queued, like the CUDA work around it, and the
/// caller orders it with events (<see cref="Synchronize"/> waits for all of it). Buffers are device addresses on
/// <see cref="NcclOptions.Device"/>; call from the thread that joined (its context is the one made current).
/// </summary>
public sealed unsafe class NcclCollectives : ICollectives
{
    private const int NcclFloat32 = 7, NcclFloat64 = 8, NcclBFloat16 = 9, NcclSum = 0, NcclAvg = 4;

    private readonly NcclLibrary.Exports nccl;
    private readonly nint stream;
    /// <summary>The rank's GPU's primary context, made current on whichever thread calls a collective (the trainer's workers do).</summary>
    private readonly nint context;
    private readonly nint done;
    private nint comm;
    private nint barrierBuffer;

    private NcclCollectives(NcclLibrary.Exports nccl, nint comm, NcclOptions options, nint context)
    {
        this.context = context;
        DeviceOrdinal = options.Device;
        this.nccl = nccl;
        this.comm = comm;
        stream = options.Stream;
        Rank = options.Rank;
        WorldSize = options.WorldSize;
        done = CudaDriver.CreateEvent();
    }

    /// <summary>
    /// Joins the group: rank 0 makes NCCL's unique id and writes it to the rendezvous folder, the others read it, every
    /// rank calls <c>ncclCommInitRank</c> (which returns once all ranks have).
    /// </summary>
    /// <exception cref="DllNotFoundException">No libnccl.so.2 was found (the message lists where it looked and the fix).</exception>
    public static NcclCollectives Join(NcclOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.WorldSize < 1 || options.Rank < 0 || options.Rank >= options.WorldSize)
            throw new ArgumentException($"Rank {options.Rank} is outside a world of {options.WorldSize} ranks.", nameof(options));
        var nccl = NcclLibrary.Get();
        nint context = CudaDevice.MakeCurrent(options.Device);
        NcclUniqueId id = options.Rank == 0 ? MakeId(nccl, options.Folder) : ReadId(options);
        nint comm;
        nccl.Check(nccl.CommInitRank(&comm, options.WorldSize, id, options.Rank), $"ncclCommInitRank(rank {options.Rank} of {options.WorldSize})");
        return new NcclCollectives(nccl, comm, options, context);
    }

    /// <summary>The NCCL version number (e.g. 22809 for 2.28.9) of the library that would load; throws as <see cref="Join"/> when none.</summary>
    public static int Version()
    {
        var nccl = NcclLibrary.Get();
        int version;
        nccl.Check(nccl.GetVersion(&version), "ncclGetVersion");
        return version;
    }

    public int Rank { get; }

    public int WorldSize { get; }

    public bool OnDevice => true;

    /// <summary>The ordinal of this rank's GPU (cuda:N), whose memory the buffers are in.</summary>
    public int DeviceOrdinal { get; }

    public void AllGather(nint send, nint receive, long countPerRank, CollectiveElement element)
    {
        CudaDevice.SetCurrent(context);
        nccl.Check(nccl.AllGather(send, receive, (nuint)countPerRank, Type(element), comm, stream), "ncclAllGather");
    }

    public void ReduceScatter(nint send, nint receive, long countPerRank, CollectiveElement element, ReduceOperation operation)
    {
        CudaDevice.SetCurrent(context);
        nccl.Check(nccl.ReduceScatter(send, receive, (nuint)countPerRank, Type(element), Op(operation), comm, stream), "ncclReduceScatter");
    }

    public void AllReduce(nint send, nint receive, long count, CollectiveElement element, ReduceOperation operation)
    {
        CudaDevice.SetCurrent(context);
        nccl.Check(nccl.AllReduce(send, receive, (nuint)count, Type(element), Op(operation), comm, stream), "ncclAllReduce");
    }

    public void Broadcast(nint buffer, long count, CollectiveElement element, int root)
    {
        CudaDevice.SetCurrent(context);
        nccl.Check(nccl.Broadcast(buffer, buffer, (nuint)count, Type(element), root, comm, stream), "ncclBroadcast");
    }

    /// <summary>An all-reduce of one float, waited for: returns once every rank has reached it and this rank's queued collectives are done.</summary>
    public void Barrier()
    {
        CudaDevice.SetCurrent(context);
        if (barrierBuffer == 0) barrierBuffer = CudaDriver.Allocate(sizeof(float));
        AllReduce(barrierBuffer, barrierBuffer, 1, CollectiveElement.Float32, ReduceOperation.Sum);
        Synchronize();
    }

    /// <summary>
    /// Queues several collectives as one NCCL group (ncclGroupStart/End), so NCCL may fuse them — e.g. the all-gathers of
    /// a prefetch window.
    /// </summary>
    public void Group(Action<NcclCollectives> collectives)
    {
        ArgumentNullException.ThrowIfNull(collectives);
        nccl.Check(nccl.GroupStart(), "ncclGroupStart");
        try
        {
            collectives(this);
        }
        finally
        {
            nccl.Check(nccl.GroupEnd(), "ncclGroupEnd");
        }
    }

    /// <summary>Blocks the host until everything queued on the stream so far has finished; fails with NCCL's error if the communicator failed.</summary>
    public void Synchronize()
    {
        CudaDevice.SetCurrent(context);
        CudaDriver.Record(done, stream);
        CudaDriver.Synchronize(done);
        int asyncError;
        nccl.Check(nccl.CommGetAsyncError(comm, &asyncError), "ncclCommGetAsyncError");
        nccl.Check(asyncError, "a queued collective (ncclCommGetAsyncError)");
    }

    private static int Type(CollectiveElement element) => element switch
    {
        CollectiveElement.Float32 => NcclFloat32,
        CollectiveElement.BFloat16 => NcclBFloat16,
        CollectiveElement.Float64 => NcclFloat64,
        _ => throw new ArgumentOutOfRangeException(nameof(element), element, "Unknown element type."),
    };

    private static int Op(ReduceOperation operation) => operation == ReduceOperation.Mean ? NcclAvg : NcclSum;

    private static NcclUniqueId MakeId(NcclLibrary.Exports nccl, string folder)
    {
        NcclUniqueId id;
        nccl.Check(nccl.GetUniqueId(&id), "ncclGetUniqueId");
        byte[] bytes = new ReadOnlySpan<byte>(&id, sizeof(NcclUniqueId)).ToArray();
        Directory.CreateDirectory(folder);
        string path = Path.Combine(folder, NcclOptions.IdFileName);
        // Written under a temporary name and renamed, so the other ranks never read half an id.
        string temp = path + ".tmp";
        File.WriteAllBytes(temp, bytes);
        File.Move(temp, path, overwrite: true);
        return id;
    }

    private static NcclUniqueId ReadId(NcclOptions options)
    {
        string path = Path.Combine(options.Folder, NcclOptions.IdFileName);
        var clock = Stopwatch.StartNew();
        while (!File.Exists(path))
        {
            if (clock.Elapsed >= options.Timeout)
                throw new CollectiveException($"Rank {options.Rank} waited {options.Timeout.TotalSeconds:0} s for rank 0's NCCL id at {path}: rank 0 failed before creating its communicator or was given another folder.", 0);
            Thread.Sleep(10);
        }
        byte[] bytes = File.ReadAllBytes(path);
        if (bytes.Length != sizeof(NcclUniqueId))
            throw new CollectiveException($"{path} holds {bytes.Length} bytes, not an NCCL unique id ({sizeof(NcclUniqueId)} bytes).", 0);
        NcclUniqueId id = default;
        bytes.CopyTo(new Span<byte>(&id, sizeof(NcclUniqueId)));
        return id;
    }

    public void Dispose()
    {
        if (comm == 0) return;
        _ = nccl.CommDestroy(comm);
        comm = 0;
        if (barrierBuffer != 0) CudaDriver.Free(barrierBuffer);
        CudaDriver.Destroy([], [done]);
    }
}

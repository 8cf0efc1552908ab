using System.Collections.Concurrent;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.IO;

/// <summary>
/// The engine's way of moving one request: the request is cut into aio-block pieces (its ends widened to
/// 4 KiB boundaries) that run as synchronous direct reads or writes on up to queue_depth × intra_op_parallelism
/// threads at once, so that many blocks are in flight for the whole request. Each piece gets a one-block
/// aligned scratch buffer (bounded by the pieces in flight) for callers whose memory is not aligned.
/// <c>aios calibrate</c>'s swap probe moves its chunks through this too, so the profile's swap rates are
/// the engine's.
/// </summary>
public sealed class ParallelPieces : IDisposable
{
    private readonly ConcurrentBag<AlignedBuffer> _buffers = [];

    /// <summary>Pieces of one aio block (at least 4 KiB), up to queue depth × threads in flight.</summary>
    public ParallelPieces(AioSettings? aio = null)
    {
        aio ??= new AioSettings();
        PieceBytes = Math.Max(AlignedBuffer.Alignment, aio.BlockSize.Value / AlignedBuffer.Alignment * AlignedBuffer.Alignment);
        InFlight = Math.Max(1, aio.QueueDepth * Math.Max(1, aio.IntraOpParallelism));
    }

    /// <summary>Bytes per piece.</summary>
    public long PieceBytes { get; }

    /// <summary>Pieces in flight at most.</summary>
    public int InFlight { get; }

    /// <summary>
    /// Runs <paramref name="piece"/> (scratch buffer, file offset, length → bytes done) over the block-aligned
    /// cover of [<paramref name="first"/>, <paramref name="last"/>) in pieces, several at once; returns the file
    /// offset where the first short piece ended, or the aligned end when none was short. A failing piece's
    /// exception is rethrown as it is (the first, when several fail), however many pieces ran.
    /// </summary>
    public long ForEach(long first, long last, Func<AlignedBuffer, long, long, long> piece)
    {
        ArgumentNullException.ThrowIfNull(piece);
        long block = AlignedBuffer.Alignment;
        long start = first / block * block, stop = (last + block - 1) / block * block;
        long count = (stop - start + PieceBytes - 1) / PieceBytes;
        long end = stop;
        object gate = new();
        void Run(long i)
        {
            long at = start + i * PieceBytes, n = Math.Min(PieceBytes, stop - at);
            AlignedBuffer buffer = Rent();
            try
            {
                long done = piece(buffer, at, n);
                if (done < n) lock (gate) end = Math.Min(end, at + done);
            }
            finally
            {
                _buffers.Add(buffer);
            }
        }
        if (count == 1) Run(0);
        else
        {
            try
            {
                Parallel.For(0L, count, new ParallelOptions { MaxDegreeOfParallelism = InFlight }, Run);
            }
            catch (AggregateException e) when (e.InnerExceptions.Count >= 1)
            {
                // The first piece's failure, as a single piece would have thrown it (callers catch IOException and DirectIoException).
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
            }
        }
        return end;
    }

    /// <summary>Reads <paramref name="length"/> bytes at <paramref name="fileOffset"/> straight into aligned <paramref name="buffer"/> from <paramref name="bufferOffset"/>; returns bytes read before end of file.</summary>
    public long Read(DirectFile file, AlignedBuffer buffer, long bufferOffset, long length, long fileOffset) =>
        Move(file, buffer, bufferOffset, length, fileOffset, write: false);

    /// <summary>Writes <paramref name="length"/> bytes of aligned <paramref name="buffer"/> from <paramref name="bufferOffset"/> at <paramref name="fileOffset"/>; returns bytes written.</summary>
    public long Write(DirectFile file, AlignedBuffer buffer, long bufferOffset, long length, long fileOffset) =>
        Move(file, buffer, bufferOffset, length, fileOffset, write: true);

    private long Move(DirectFile file, AlignedBuffer buffer, long bufferOffset, long length, long fileOffset, bool write)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(buffer);
        long block = AlignedBuffer.Alignment;
        if (fileOffset % block != 0 || bufferOffset % block != 0 || length % block != 0)
            throw new MisalignedIoException($"Whole-buffer direct I/O needs 4 KiB-aligned offsets and length; got file offset {fileOffset}, buffer offset {bufferOffset}, length {length}.");
        long end = ForEach(fileOffset, fileOffset + length, (_, at, n) => write
            ? file.Write(buffer, bufferOffset + (at - fileOffset), n, at)
            : file.Read(buffer, bufferOffset + (at - fileOffset), n, at));
        return end - fileOffset;
    }

    private AlignedBuffer Rent() => _buffers.TryTake(out AlignedBuffer? buffer) ? buffer : new AlignedBuffer(new Bytes(PieceBytes));

    /// <summary>Frees the scratch buffers.</summary>
    public void Dispose()
    {
        while (_buffers.TryTake(out AlignedBuffer? b)) b.Dispose();
    }
}

namespace AiOs.Planner.IO;

/// <summary>One thread's slice of a read or write: a contiguous byte range cut into block-size requests.</summary>
internal sealed class IoJob
{
    private bool _fileReferenced;

    public IoJob(DirectFile file, bool write, AlignedBuffer buffer, long bufferOffset, long length, long fileOffset, long blockSize, CancellationToken token)
    {
        File = file;
        IsWrite = write;
        Buffer = buffer;
        BufferOffset = bufferOffset;
        Length = length;
        FileOffset = fileOffset;
        BlockSize = blockSize;
        Token = token;
    }

    public DirectFile File { get; }
    public bool IsWrite { get; }
    /// <summary>Held so the memory stays alive while the kernel uses it.</summary>
    public AlignedBuffer Buffer { get; }
    public long BufferOffset { get; }
    public long Length { get; }
    public long FileOffset { get; }
    public long BlockSize { get; }
    public CancellationToken Token { get; }
    public TaskCompletionSource<long> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Bytes handed to the kernel so far (relative to the slice start).</summary>
    public long Submitted { get; set; }
    /// <summary>Bytes the kernel reported moved.</summary>
    public long Done { get; set; }
    /// <summary>Requests in flight.</summary>
    public int InFlight { get; set; }
    public Exception? Error { get; set; }
    /// <summary>A read came back short: end of file, nothing more to ask for.</summary>
    public bool ReachedEnd { get; set; }
    public bool Cancelled { get; set; }

    public bool HasMoreToSubmit => Error is null && !ReachedEnd && !Cancelled && Submitted < Length;

    public bool Finished => !HasMoreToSubmit && InFlight == 0;

    public string Operation => IsWrite ? "write" : "read";

    /// <summary>Keeps the descriptor open until the job completes.</summary>
    public void Start()
    {
        File.Handle.DangerousAddRef(ref _fileReferenced);
    }

    /// <summary>Releases the descriptor and completes the task with the bytes moved, the first error, or cancellation.</summary>
    public void Complete()
    {
        if (_fileReferenced) File.Handle.DangerousRelease();
        _fileReferenced = false;
        if (Error is not null) Completion.TrySetException(Error);
        else if (Cancelled) Completion.TrySetCanceled(Token);
        else Completion.TrySetResult(Done);
    }
}

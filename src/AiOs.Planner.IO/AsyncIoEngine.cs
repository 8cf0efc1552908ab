using AiOs.Planner.Settings;

namespace AiOs.Planner.IO;

/// <summary>
/// Asynchronous reads and writes with DeepSpeed's aio meanings: a request is cut into
/// <c>intra_op_parallelism</c> contiguous slices, one per I/O thread; each thread cuts its slice into
/// <c>block_size</c> requests and keeps up to <c>queue_depth</c> of them in flight with Linux kernel AIO.
/// <c>single_submit</c> submits one request per system call; <c>overlap_events</c> refills the queue as
/// each request completes (off: submit a batch, wait for the whole batch). Requests from several callers
/// queue behind each other per thread without draining the device in between.
/// </summary>
/// <remarks>The buffer and the file must stay undisposed until the returned task completes.</remarks>
public sealed class AsyncIoEngine : IDisposable
{
    private readonly AioWorker[] _workers;

    /// <summary>Starts <c>intra_op_parallelism</c> I/O threads with the given settings.</summary>
    public AsyncIoEngine(AioSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.BlockSize.Value <= 0 || settings.BlockSize.Value % AlignedBuffer.Alignment != 0)
            throw new MisalignedIoException($"block_size must be a positive multiple of {AlignedBuffer.Alignment} bytes; got {settings.BlockSize.Value}.");
        ArgumentOutOfRangeException.ThrowIfLessThan(settings.QueueDepth, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(settings.IntraOpParallelism, 1);
        Settings = settings;
        _workers = new AioWorker[settings.IntraOpParallelism];
        for (int i = 0; i < _workers.Length; i++)
            _workers[i] = new AioWorker(i, settings.QueueDepth, settings.SingleSubmit, settings.OverlapEvents);
    }

    /// <summary>The settings this engine runs with.</summary>
    public AioSettings Settings { get; }

    /// <summary>Set when kernel AIO was unavailable and the threads do blocking I/O (queue depth 1 each).</summary>
    public string? Warning => _workers[0].Warning;

    /// <summary>Reads the whole buffer from <paramref name="fileOffset"/>; the result is the bytes read (fewer at end of file).</summary>
    public Task<long> ReadAsync(DirectFile file, AlignedBuffer buffer, long fileOffset, CancellationToken cancellationToken = default) =>
        ReadAsync(file, buffer, 0, buffer?.Length ?? 0, fileOffset, cancellationToken);

    /// <summary>Reads <paramref name="length"/> bytes at <paramref name="fileOffset"/> into the buffer at <paramref name="bufferOffset"/>.</summary>
    public Task<long> ReadAsync(DirectFile file, AlignedBuffer buffer, long bufferOffset, long length, long fileOffset, CancellationToken cancellationToken = default) =>
        Start(file, false, buffer, bufferOffset, length, fileOffset, cancellationToken);

    /// <summary>Writes the whole buffer at <paramref name="fileOffset"/>; the result is the bytes written.</summary>
    public Task<long> WriteAsync(DirectFile file, AlignedBuffer buffer, long fileOffset, CancellationToken cancellationToken = default) =>
        WriteAsync(file, buffer, 0, buffer?.Length ?? 0, fileOffset, cancellationToken);

    /// <summary>Writes <paramref name="length"/> bytes from the buffer at <paramref name="bufferOffset"/> to <paramref name="fileOffset"/>.</summary>
    public Task<long> WriteAsync(DirectFile file, AlignedBuffer buffer, long bufferOffset, long length, long fileOffset, CancellationToken cancellationToken = default) =>
        Start(file, true, buffer, bufferOffset, length, fileOffset, cancellationToken);

    private Task<long> Start(DirectFile file, bool write, AlignedBuffer buffer, long bufferOffset, long length, long fileOffset, CancellationToken token)
    {
        ArgumentNullException.ThrowIfNull(file);
        file.CheckRequest(buffer, bufferOffset, length, fileOffset);
        if (token.IsCancellationRequested) return Task.FromCanceled<long>(token);
        if (length == 0) return Task.FromResult(0L);
        // Each thread takes one contiguous, 4096-aligned slice, as DeepSpeed's intra-op parallelism does.
        long slice = (length + _workers.Length - 1) / _workers.Length;
        slice = (slice + AlignedBuffer.Alignment - 1) / AlignedBuffer.Alignment * AlignedBuffer.Alignment;
        var tasks = new List<Task<long>>(_workers.Length);
        for (int i = 0; i < _workers.Length && i * slice < length; i++)
        {
            long start = i * slice;
            long n = Math.Min(slice, length - start);
            var job = new IoJob(file, write, buffer, bufferOffset + start, n, fileOffset + start, Settings.BlockSize.Value, token);
            job.Start();
            _workers[i].Enqueue(job);
            tasks.Add(job.Completion.Task);
        }
        return tasks.Count == 1 ? tasks[0] : Sum(tasks);
    }

    private static async Task<long> Sum(List<Task<long>> tasks)
    {
        long[] done = await Task.WhenAll(tasks).ConfigureAwait(false);
        return done.Sum();
    }

    /// <summary>Stops the I/O threads after the queued requests finish.</summary>
    public void Dispose()
    {
        foreach (var w in _workers) w.Dispose();
    }
}

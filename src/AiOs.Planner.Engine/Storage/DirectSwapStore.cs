using System.Collections.Concurrent;
using AiOs.Planner.IO;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Storage;

/// <summary>
/// An <see cref="ISwapStore"/> over the direct-I/O library: one O_DIRECT file per key, so swap traffic goes
/// to the drive and not the page cache, as the calibrated profile assumes. Requests at any offset and
/// length are widened to 4 KiB blocks through an aligned bounce buffer; a write that covers a block only
/// partly reads that block first (read-modify-write), which is safe because the engine never writes one
/// key from two threads at once. Where O_DIRECT is refused (tmpfs), files fall back to buffered I/O and
/// <see cref="Warning"/> says so. A request larger than the aio block size is split into blocks issued
/// in parallel, up to the aio settings' bytes in flight (queue depth × threads), so one large read keeps
/// several requests on the drive.
/// </summary>
public sealed class DirectSwapStore : ISwapStore
{
    private const long Block = AlignedBuffer.Alignment;
    private readonly SwapDirectory _directory;
    private readonly ConcurrentDictionary<string, DirectFile> _files = new(StringComparer.Ordinal);
    private readonly ConcurrentBag<AlignedBuffer> _buffers = [];
    private readonly long _blockBytes;
    private readonly int _inFlight;

    /// <summary>Stores files in <paramref name="directory"/> (the store does not own it), splitting requests as <paramref name="aio"/> says.</summary>
    public DirectSwapStore(SwapDirectory directory, Settings.AioSettings? aio = null)
    {
        _directory = directory;
        aio ??= new Settings.AioSettings();
        _blockBytes = Math.Max(Block, aio.BlockSize.Value / Block * Block);
        _inFlight = Math.Max(1, aio.QueueDepth * Math.Max(1, aio.IntraOpParallelism));
    }

    /// <summary>The first fallback warning, or null while every file uses O_DIRECT.</summary>
    public string? Warning => _files.Values.Select(f => f.FallbackWarning).FirstOrDefault(w => w is not null);

    /// <inheritdoc/>
    public void Write(string key, long offset, ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) return;
        DirectFile file = File(key);
        long start = offset / Block * Block, end = AlignUp(offset + data.Length);
        AlignedBuffer buffer = Rent(end - start);
        try
        {
            Span<byte> span = buffer.AsSpan(0, checked((int)(end - start)));
            if (start != offset || end != offset + data.Length)
            {
                long got = Transfer(file, buffer, end - start, start, write: false);
                span[(int)got..].Clear();
            }
            data.CopyTo(span[(int)(offset - start)..]);
            try
            {
                Transfer(file, buffer, end - start, start, write: true);
            }
            catch (DirectIoException e) when (e.Message.Contains("space", StringComparison.OrdinalIgnoreCase))
            {
                throw new IOException($"The NVMe swap folder '{_directory.Path}' is full: writing {data.Length} bytes of '{key}' failed ({e.Message}).", e);
            }
        }
        finally
        {
            _buffers.Add(buffer);
        }
    }

    /// <inheritdoc/>
    public void Read(string key, long offset, Span<byte> destination)
    {
        if (destination.IsEmpty) return;
        DirectFile file = File(key);
        long start = offset / Block * Block, end = AlignUp(offset + destination.Length);
        AlignedBuffer buffer = Rent(end - start);
        try
        {
            long got = Transfer(file, buffer, end - start, start, write: false);
            if (got < offset + destination.Length - start)
                throw new EndOfStreamException($"Swap file '{key}' ends at {start + got} bytes; {offset + destination.Length} were expected.");
            buffer.AsSpan(offset - start, destination.Length).CopyTo(destination);
        }
        finally
        {
            _buffers.Add(buffer);
        }
    }

    /// <summary>
    /// Moves <paramref name="length"/> bytes between the buffer and the file at <paramref name="fileOffset"/>
    /// in aio-block pieces, several in flight; returns the bytes before the end of file (reads) or the length.
    /// </summary>
    private long Transfer(DirectFile file, AlignedBuffer buffer, long length, long fileOffset, bool write)
    {
        if (length <= _blockBytes)
            return write ? file.Write(buffer, 0, length, fileOffset) : file.Read(buffer, 0, length, fileOffset);
        long pieces = (length + _blockBytes - 1) / _blockBytes;
        long end = length;
        object gate = new();
        Parallel.For(0L, pieces, new ParallelOptions { MaxDegreeOfParallelism = _inFlight }, i =>
        {
            long at = i * _blockBytes, n = Math.Min(_blockBytes, length - at);
            long done = write ? file.Write(buffer, at, n, fileOffset + at) : file.Read(buffer, at, n, fileOffset + at);
            if (done < n)
                lock (gate) end = Math.Min(end, at + done);
        });
        return end;
    }

    private static long AlignUp(long value) => (value + Block - 1) / Block * Block;

    private DirectFile File(string key) => _files.GetOrAdd(key, k => DirectFile.Open(_directory.FileFor(k), DirectFileMode.ReadWrite));

    /// <summary>A pooled aligned buffer of at least <paramref name="bytes"/> (a too-small pooled one is freed and replaced).</summary>
    private AlignedBuffer Rent(long bytes)
    {
        if (_buffers.TryTake(out AlignedBuffer? buffer))
        {
            if (buffer.Length >= bytes) return buffer;
            buffer.Dispose();
        }
        return new AlignedBuffer(new Bytes(bytes));
    }

    /// <summary>Closes every file and frees the bounce buffers.</summary>
    public void Dispose()
    {
        foreach (DirectFile f in _files.Values) f.Dispose();
        _files.Clear();
        while (_buffers.TryTake(out AlignedBuffer? b)) b.Dispose();
    }
}

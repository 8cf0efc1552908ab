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
/// <see cref="Warning"/> says so.
/// </summary>
public sealed class DirectSwapStore : ISwapStore
{
    private const long Block = AlignedBuffer.Alignment;
    private readonly SwapDirectory _directory;
    private readonly ConcurrentDictionary<string, DirectFile> _files = new(StringComparer.Ordinal);
    private readonly ConcurrentBag<AlignedBuffer> _buffers = [];

    /// <summary>Stores files in <paramref name="directory"/> (the store does not own it).</summary>
    public DirectSwapStore(SwapDirectory directory) => _directory = directory;

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
                long got = file.Read(buffer, 0, end - start, start);
                span[(int)got..].Clear();
            }
            data.CopyTo(span[(int)(offset - start)..]);
            try
            {
                file.Write(buffer, 0, end - start, start);
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
            long got = file.Read(buffer, 0, end - start, start);
            if (got < offset + destination.Length - start)
                throw new EndOfStreamException($"Swap file '{key}' ends at {start + got} bytes; {offset + destination.Length} were expected.");
            buffer.AsSpan(offset - start, destination.Length).CopyTo(destination);
        }
        finally
        {
            _buffers.Add(buffer);
        }
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

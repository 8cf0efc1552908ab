using System.Collections.Concurrent;
using Microsoft.Win32.SafeHandles;

namespace AiOs.Planner.Engine.Storage;

/// <summary>
/// An <see cref="ISwapStore"/> with one ordinary (page-cached) file per key in a <see cref="SwapDirectory"/>,
/// written and read with positional I/O so concurrent calls need no shared file position.
/// </summary>
public sealed class FileSwapStore : ISwapStore
{
    private readonly SwapDirectory _directory;
    private readonly ConcurrentDictionary<string, SafeFileHandle> _handles = new(StringComparer.Ordinal);

    /// <summary>Stores files in <paramref name="directory"/> (the store does not own it).</summary>
    public FileSwapStore(SwapDirectory directory) => _directory = directory;

    /// <inheritdoc/>
    public void Write(string key, long offset, ReadOnlySpan<byte> data)
    {
        try
        {
            RandomAccess.Write(Handle(key), data, offset);
        }
        catch (IOException e) when (e.HResult == 28 || e.Message.Contains("No space", StringComparison.OrdinalIgnoreCase))
        {
            throw new IOException($"The NVMe swap folder '{_directory.Path}' is full: writing {data.Length} bytes of '{key}' failed.", e);
        }
    }

    /// <inheritdoc/>
    public void Read(string key, long offset, Span<byte> destination)
    {
        SafeFileHandle handle = Handle(key);
        int done = 0;
        while (done < destination.Length)
        {
            int n = RandomAccess.Read(handle, destination[done..], offset + done);
            if (n == 0) throw new EndOfStreamException($"Swap file '{key}' ends at {offset + done} bytes; {destination.Length - done} more were expected.");
            done += n;
        }
    }

    private SafeFileHandle Handle(string key) =>
        _handles.GetOrAdd(key, k => File.OpenHandle(_directory.FileFor(k), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read));

    /// <summary>Closes every file (the directory decides whether they are kept).</summary>
    public void Dispose()
    {
        foreach (SafeFileHandle h in _handles.Values) h.Dispose();
        _handles.Clear();
    }
}
